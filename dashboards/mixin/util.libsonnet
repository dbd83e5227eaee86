// Small text helpers shared by the rules and the dashboard.
{
  // "job, instance, account" for a `by (...)` clause.
  by(labels):: std.join(', ', labels),
  // 0.1 -> "10", without float noise.
  percent(ratio):: "%g" % (ratio * 100),
  // 604800 -> "7 days", 3600 -> "1 hour".
  duration(seconds)::
    local unit(n, one) = '%d %s%s' % [n, one, if n == 1 then '' else 's'];
    if seconds % 86400 == 0 then unit(seconds / 86400, 'day')
    else if seconds % 3600 == 0 then unit(seconds / 3600, 'hour')
    else unit(seconds / 60, 'minute'),
  // An alert template's "{{ $value }} <one|many>": `one` where the value is 1, so that an
  // annotation says "1 cloud phone is frozen" and "3 cloud phones are frozen".
  count(one, many):: '{{ $value }} {{ if eq $value 1.0 }}%s{{ else }}%s{{ end }}' % [one, many],
  // A Prometheus duration as words: "10m" -> "10 minutes", "1h" -> "1 hour".
  words(d)::
    local n = std.parseInt(d[:std.length(d) - 1]);
    local u = d[std.length(d) - 1];
    local name = { s: 'second', m: 'minute', h: 'hour', d: 'day' }[u];
    '%d %s%s' % [n, name, if n == 1 then '' else 's'],
}
