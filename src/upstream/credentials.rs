//! The credentials the exporter signs in with, once resolved from flags, files and the
//! environment (`cli::credentials`), and the format of a credentials file.

use reqwest::Url;

use crate::secret::Secret;

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum Credentials {
    /// A ready X-Auth-Token, used as it is until it stops working.
    Token(Secret),
    /// An IAM user's password, exchanged for tokens that are renewed before they expire.
    Iam(IamCredentials),
    /// An access key pair that signs every request (SDK-HMAC-SHA256).
    AkSk(AccessKey),
}

#[derive(Debug, Clone, PartialEq)]
pub struct IamCredentials {
    pub endpoint: Url,
    pub username: String,
    pub domain: String,
    pub project: ProjectScope,
    pub password: Secret,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProjectScope {
    Name(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessKey {
    pub access_key: String,
    pub secret_key: Secret,
    pub security_token: Option<Secret>,
    /// Sent as X-Project-Id; when `None`, the project named `region` is looked up from IAM at
    /// `iam_endpoint` (`GET /v3/projects?name=`), signed with the same key, as Huawei's SDKs do.
    pub project_id: Option<String>,
    pub region: Option<String>,
    pub iam_endpoint: Url,
}

/// `access_key = AK` / `secret_key = SK` / `security_token = T` lines (`#` comments allowed), or the
/// console's credentials.csv: a header naming "Access Key Id" and "Secret Access Key", then values.
pub fn parse_credentials_file(text: &str) -> Option<(String, String, Option<String>)> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = lines.clone().next()?;
    if first.contains("Access Key Id") {
        let header: Vec<&str> = first.split(',').map(str::trim).collect();
        let values: Vec<&str> = lines.nth(1)?.split(',').map(str::trim).collect();
        let column = |name: &str| {
            let i = header.iter().position(|h| h.eq_ignore_ascii_case(name))?;
            values
                .get(i)
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty())
        };
        return Some((column("Access Key Id")?, column("Secret Access Key")?, None));
    }
    let (mut ak, mut sk, mut token) = (None, None, None);
    for line in lines {
        let (key, value) = line.split_once('=')?;
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "access_key" | "ak" => ak = Some(value),
            "secret_key" | "sk" => sk = Some(value),
            "security_token" => token = Some(value),
            _ => {}
        }
    }
    // An empty security token is no token: signed, it would be an empty X-Security-Token.
    Some((
        ak.filter(|v| !v.is_empty())?,
        sk.filter(|v| !v.is_empty())?,
        token.filter(|v| !v.is_empty()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_security_token_line_is_no_token() {
        // Found by the credentials_file fuzz target.
        for line in [
            "security_token =",
            "security_token = \"\"",
            "security_token=  ",
        ] {
            let text = format!("access_key = AK\nsecret_key = SK\n{line}\n");
            assert_eq!(
                parse_credentials_file(&text),
                Some(("AK".into(), "SK".into(), None)),
                "{line}"
            );
        }
    }
}
