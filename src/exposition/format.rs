//! The two text formats a scraper may be answered in, chosen from its `Accept` header as
//! client_golang chooses (`expfmt.NegotiateIncludingOpenMetrics`): OpenMetrics 1.0.0 when the
//! scraper asks for it (Prometheus asks for it first), the text format 0.0.4 otherwise. And the
//! OpenMetrics encoding of the families the prometheus crate holds, which the crate does not
//! write: counters named without `_total` in their metadata, a `# UNIT` where the name ends in
//! one, floats written as floats, and the closing `# EOF`.

use std::fmt::Write as _;

use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};

/// The format of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format `accept` (an `Accept` header) prefers among those served: its media ranges by
    /// their `q`, highest first, the first `application/openmetrics-text` (version 1.0.0, 0.0.1
    /// or none) or `text/plain` (version 0.0.4 or none); text when it names neither.
    pub fn negotiate(accept: Option<&str>) -> Format {
        // The best offer so far: of equal weight, the one named first.
        let mut best: Option<(f32, Format)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let (mut q, mut version) = (1.0_f32, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            let format = match (media.as_str(), version) {
                ("application/openmetrics-text", None | Some("1.0.0" | "0.0.1")) => {
                    Format::OpenMetrics
                }
                ("text/plain", None | Some("0.0.4")) => Format::Text,
                _ => continue,
            };
            if q > best.map_or(0.0, |(weight, _)| weight) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus::TEXT_FORMAT,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The metadata lines of a gauge family written outside the prometheus crate.
    pub fn gauge_header(self, name: &str, help: &str) -> String {
        match self {
            Format::Text => format!("# HELP {name} {help}\n# TYPE {name} gauge\n"),
            Format::OpenMetrics => metadata(name, help, "gauge"),
        }
    }

    /// Appends `family` to `out`.
    pub fn encode(self, family: &MetricFamily, out: &mut String) -> Result<(), prometheus::Error> {
        match self {
            Format::Text => {
                prometheus::TextEncoder::new().encode_utf8(std::slice::from_ref(family), out)
            }
            Format::OpenMetrics => {
                openmetrics(family, out);
                Ok(())
            }
        }
    }

    /// What ends an answer: OpenMetrics' `# EOF`.
    pub fn end(self) -> &'static str {
        match self {
            Format::Text => "",
            Format::OpenMetrics => "# EOF\n",
        }
    }
}

/// `# HELP`, `# TYPE` and, where the name ends in a base unit, `# UNIT`.
fn metadata(name: &str, help: &str, kind: &str) -> String {
    let mut out = format!("# HELP {name} ");
    escape(help, &mut out);
    let _ = write!(out, "\n# TYPE {name} {kind}\n");
    if let Some(unit) = ["seconds", "bytes"]
        .into_iter()
        .find(|unit| name.ends_with(&format!("_{unit}")))
    {
        let _ = writeln!(out, "# UNIT {name} {unit}");
    }
    out
}

/// One family in OpenMetrics text, as client_golang's `MetricFamilyToOpenMetrics` writes it.
fn openmetrics(family: &MetricFamily, out: &mut String) {
    let name = family.name();
    let kind = family.get_field_type();
    let (short, kind_name) = match kind {
        MetricType::COUNTER => match name.strip_suffix("_total") {
            Some(short) => (short, "counter"),
            // OpenMetrics counters end in _total; one that does not is written as unknown.
            None => (name, "unknown"),
        },
        MetricType::GAUGE => (name, "gauge"),
        MetricType::HISTOGRAM => (name, "histogram"),
        MetricType::SUMMARY => (name, "summary"),
        MetricType::UNTYPED => (name, "unknown"),
    };
    out.push_str(&metadata(short, family.help(), kind_name));
    for metric in family.get_metric() {
        match kind {
            MetricType::COUNTER => {
                sample(out, name, metric, None, Float(metric.get_counter().value()))
            }
            MetricType::GAUGE => sample(out, name, metric, None, Float(metric.get_gauge().value())),
            MetricType::UNTYPED => sample(out, name, metric, None, Float(metric.untyped.value())),
            MetricType::HISTOGRAM => {
                let h = metric.get_histogram();
                let bucket = format!("{name}_bucket");
                let mut infinite = false;
                for b in h.get_bucket() {
                    infinite |= b.upper_bound() == f64::INFINITY;
                    let le = Some(("le", b.upper_bound()));
                    sample(out, &bucket, metric, le, Count(b.cumulative_count()));
                }
                if !infinite {
                    let le = Some(("le", f64::INFINITY));
                    sample(out, &bucket, metric, le, Count(h.get_sample_count()));
                }
                sum_and_count(out, name, metric, h.get_sample_sum(), h.get_sample_count());
            }
            MetricType::SUMMARY => {
                let s = metric.get_summary();
                for q in s.get_quantile() {
                    let quantile = Some(("quantile", q.quantile()));
                    sample(out, name, metric, quantile, Float(q.value()));
                }
                sum_and_count(out, name, metric, s.sample_sum(), s.sample_count());
            }
        }
    }
}

/// The `_sum` and `_count` samples of a histogram or a summary.
fn sum_and_count(out: &mut String, name: &str, metric: &Metric, sum: f64, count: u64) {
    sample(out, &format!("{name}_sum"), metric, None, Float(sum));
    sample(out, &format!("{name}_count"), metric, None, Count(count));
}

/// A sample's value: a float, or a count of observations, written as the integer it is.
enum Number {
    Float(f64),
    Count(u64),
}
use Number::{Count, Float};

/// One sample line: its labels, then `extra` (`le` or `quantile`), the value, the timestamp.
fn sample(
    out: &mut String,
    name: &str,
    metric: &Metric,
    extra: Option<(&str, f64)>,
    value: Number,
) {
    out.push_str(name);
    let labels: &[LabelPair] = metric.get_label();
    if !labels.is_empty() || extra.is_some() {
        let mut separator = '{';
        for label in labels {
            out.push(separator);
            out.push_str(label.name());
            out.push_str("=\"");
            escape(label.value(), out);
            out.push('"');
            separator = ',';
        }
        if let Some((label, bound)) = extra {
            out.push(separator);
            let _ = write!(out, "{label}=\"");
            float(bound, out);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    match value {
        Float(value) => float(value, out),
        Count(count) => {
            let _ = write!(out, "{count}");
        }
    }
    if metric.has_timestamp_ms() {
        out.push(' ');
        float(metric.timestamp_ms() as f64 / 1000.0, out);
    }
    out.push('\n');
}

/// A float as OpenMetrics writes one: `1.0`, not `1`; `+Inf`, `-Inf`, `NaN`.
fn float(value: f64, out: &mut String) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let start = out.len();
        let _ = write!(out, "{value}");
        if !out[start..].contains(['.', 'e']) {
            out.push_str(".0");
        }
    }
}

/// A HELP text or label value with `\`, newline and `"` escaped, as OpenMetrics wants both.
fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Counter, Histogram, HistogramOpts, IntGauge, Opts, Registry};

    #[test]
    fn negotiation_follows_the_accept_header_as_client_golang_does() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, expected) in [
            (Some(prometheus), Format::OpenMetrics),
            (None, Format::Text),
            (Some(""), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("text/plain"), Format::Text),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (Some("Application/OpenMetrics-Text; Version=\"1.0.0\""), Format::OpenMetrics),
            // A version not served, or a weight of 0, is not an offer.
            (Some("application/openmetrics-text;version=2.0.0"), Format::Text),
            (Some("application/openmetrics-text;q=0, text/plain"), Format::Text),
            (Some("text/plain;q=0.5, application/openmetrics-text;q=0.9"), Format::OpenMetrics),
            (Some("application/openmetrics-text;q=0.2, text/plain;version=0.0.4;q=0.3"), Format::Text),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), Format::Text),
        ] {
            assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
        }
    }

    fn encoded(registry: &Registry) -> String {
        let mut out = String::new();
        for family in registry.gather() {
            Format::OpenMetrics.encode(&family, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn counters_drop_total_in_their_metadata_and_units_are_named() {
        let registry = Registry::new();
        let counter = Counter::with_opts(Opts::new(
            "demo_wait_seconds_total",
            "Time \"waited\",\nin all.",
        ))
        .unwrap();
        counter.inc_by(3.0);
        registry.register(Box::new(counter)).unwrap();
        let gauge = IntGauge::new("demo_up", "Up.").unwrap();
        gauge.set(1);
        registry.register(Box::new(gauge)).unwrap();
        let histogram = Histogram::with_opts(
            HistogramOpts::new("demo_duration_seconds", "Durations.").buckets(vec![0.001, 1.0]),
        )
        .unwrap();
        histogram.observe(0.5);
        registry.register(Box::new(histogram)).unwrap();
        assert_eq!(
            encoded(&registry),
            "# HELP demo_duration_seconds Durations.\n\
             # TYPE demo_duration_seconds histogram\n\
             # UNIT demo_duration_seconds seconds\n\
             demo_duration_seconds_bucket{le=\"0.001\"} 0\n\
             demo_duration_seconds_bucket{le=\"1.0\"} 1\n\
             demo_duration_seconds_bucket{le=\"+Inf\"} 1\n\
             demo_duration_seconds_sum 0.5\n\
             demo_duration_seconds_count 1\n\
             # HELP demo_up Up.\n\
             # TYPE demo_up gauge\n\
             demo_up 1.0\n\
             # HELP demo_wait_seconds Time \\\"waited\\\",\\nin all.\n\
             # TYPE demo_wait_seconds counter\n\
             # UNIT demo_wait_seconds seconds\n\
             demo_wait_seconds_total 3.0\n"
        );
    }
}
