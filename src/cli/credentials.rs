//! The sign-in flags: which credentials the exporter signs in with, from flags, files and the
//! environment: a static token, an IAM user's password, or an access key pair. Exactly one mode,
//! chosen by what is set; secrets only ever come from a file or the environment, never from a
//! flag value.

use std::path::{Path, PathBuf};

use clap::Args;

use super::accounts::EnvLookup;
use crate::secret::{read_secret_file, Secret, SecretFileError};
use crate::upstream::credentials::{
    parse_credentials_file, AccessKey, Credentials, IamCredentials, ProjectScope,
};
use crate::upstream::http::{endpoint_url, EndpointError};

pub const TOKEN_ENV: &str = "CLOUDDEVICE_AUTH_TOKEN";
pub const PASSWORD_ENV: &str = "CLOUDDEVICE_IAM_PASSWORD";
pub const ACCESS_KEY_ENV: &str = "CLOUDDEVICE_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "CLOUDDEVICE_SECRET_KEY";
pub const SECURITY_TOKEN_ENV: &str = "CLOUDDEVICE_SECURITY_TOKEN";

#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// File holding a ready X-Auth-Token (alternative: the CLOUDDEVICE_AUTH_TOKEN environment variable).
    #[arg(
        long = "clouddevice.auth-token-file",
        env = "CLOUDDEVICE_EXPORTER_CLOUDDEVICE_AUTH_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub auth_token_file: Option<PathBuf>,

    /// IAM endpoint for password login.
    #[arg(
        long = "iam.endpoint",
        env = "CLOUDDEVICE_EXPORTER_IAM_ENDPOINT",
        default_value = "https://iam.myhuaweicloud.com",
        value_name = "URL"
    )]
    pub iam_endpoint: String,

    /// IAM user name for password login.
    #[arg(
        long = "iam.username",
        env = "CLOUDDEVICE_EXPORTER_IAM_USERNAME",
        value_name = "USER"
    )]
    pub iam_username: Option<String>,

    /// Account (domain) name the IAM user belongs to.
    #[arg(
        long = "iam.domain",
        env = "CLOUDDEVICE_EXPORTER_IAM_DOMAIN",
        value_name = "ACCOUNT"
    )]
    pub iam_domain: Option<String>,

    /// Project name the token is scoped to (or use --iam.project-id).
    #[arg(
        long = "iam.project",
        env = "CLOUDDEVICE_EXPORTER_IAM_PROJECT",
        value_name = "NAME",
        conflicts_with = "iam_project_id"
    )]
    pub iam_project: Option<String>,

    /// Project ID the token is scoped to (or use --iam.project).
    #[arg(
        long = "iam.project-id",
        env = "CLOUDDEVICE_EXPORTER_IAM_PROJECT_ID",
        value_name = "ID"
    )]
    pub iam_project_id: Option<String>,

    /// File holding the IAM user's password (alternative: the CLOUDDEVICE_IAM_PASSWORD environment variable).
    #[arg(
        long = "iam.password-file",
        env = "CLOUDDEVICE_EXPORTER_IAM_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub iam_password_file: Option<PathBuf>,

    /// File holding an access key pair: `access_key = ...` and `secret_key = ...` lines, or the
    /// credentials.csv the console downloads (alternative: CLOUDDEVICE_ACCESS_KEY and CLOUDDEVICE_SECRET_KEY).
    #[arg(
        long = "clouddevice.credentials-file",
        env = "CLOUDDEVICE_EXPORTER_CLOUDDEVICE_CREDENTIALS_FILE",
        value_name = "FILE"
    )]
    pub credentials_file: Option<PathBuf>,

    /// Project ID sent as X-Project-Id with AK/SK-signed requests.
    #[arg(
        long = "clouddevice.project-id",
        env = "CLOUDDEVICE_EXPORTER_CLOUDDEVICE_PROJECT_ID",
        value_name = "ID"
    )]
    pub project_id: Option<String>,
}

/// The secrets the environment may hold, read once by `main` (tests pass their own).
#[derive(Debug, Default, Clone)]
pub struct SecretEnv {
    pub auth_token: Option<Secret>,
    pub iam_password: Option<Secret>,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub security_token: Option<Secret>,
    /// Variables the accounts file names (`token_env`, `password_env`, ...).
    pub named: EnvLookup,
}

impl SecretEnv {
    pub fn from_process() -> Self {
        let named = EnvLookup::process();
        SecretEnv {
            auth_token: named.get(TOKEN_ENV),
            iam_password: named.get(PASSWORD_ENV),
            access_key: named.get(ACCESS_KEY_ENV),
            secret_key: named.get(SECRET_KEY_ENV),
            security_token: named.get(SECURITY_TOKEN_ENV),
            named,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no credentials: set {TOKEN_ENV} or --clouddevice.auth-token-file (a token), --iam.username with --iam.password-file or {PASSWORD_ENV} (IAM password), or {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} or --clouddevice.credentials-file (AK/SK); or try --demo")]
    None,
    #[error("credentials for more than one mode are set ({0}); keep exactly one")]
    Several(String),
    #[error("both {0} and {1} are set; keep only one")]
    Both(&'static str, &'static str),
    #[error("IAM password login needs {0}")]
    IamIncomplete(&'static str),
    #[error("AK/SK signing needs {0}")]
    AkSkIncomplete(&'static str),
    #[error(transparent)]
    IamEndpoint(#[from] EndpointError),
    #[error(transparent)]
    File(#[from] SecretFileError),
    #[error("--clouddevice.credentials-file {0:?} holds no access_key and secret_key; write `access_key = ...` and `secret_key = ...` lines, or use the credentials.csv the console downloads")]
    CredentialsFormat(PathBuf),
}

/// Reads a secrets file, trimmed; notes a warning when other users may read it.
fn read_secret(
    flag: &'static str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, CredentialError> {
    let (secret, warning) = read_secret_file(flag, path)?;
    warnings.extend(warning);
    Ok(secret.expose().to_string())
}

/// One of two places for the same secret, never both.
fn one_of(
    file: Option<String>,
    env: Option<Secret>,
    names: (&'static str, &'static str),
) -> Result<Option<Secret>, CredentialError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(CredentialError::Both(names.0, names.1)),
        (Some(f), None) => Ok(Some(Secret::new(f))),
        (None, env) => Ok(env),
    }
}

impl CredentialArgs {
    /// The sign-in modes the flags and the environment set: none, one, or (a mistake) several.
    pub fn modes(&self, env: &SecretEnv) -> Vec<&'static str> {
        [
            (self.token_set(env), "static token"),
            (self.iam_set(env), "IAM password"),
            (self.aksk_set(env), "AK/SK"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    fn token_set(&self, env: &SecretEnv) -> bool {
        self.auth_token_file.is_some() || env.auth_token.is_some()
    }

    fn iam_set(&self, env: &SecretEnv) -> bool {
        self.iam_username.is_some()
            || self.iam_password_file.is_some()
            || env.iam_password.is_some()
    }

    fn aksk_set(&self, env: &SecretEnv) -> bool {
        self.credentials_file.is_some() || env.access_key.is_some() || env.secret_key.is_some()
    }

    /// Picks the one mode that is configured. Warnings (secrets files others can read) are
    /// returned for the caller to log once logging is up.
    pub fn resolve(
        self,
        env: SecretEnv,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, CredentialError> {
        match self.modes(&env).as_slice() {
            [] => Err(CredentialError::None),
            [_] if self.token_set(&env) => self.token(env, warnings),
            [_] if self.iam_set(&env) => self.iam(env, warnings),
            [_] => self.aksk(env, warnings),
            several => Err(CredentialError::Several(several.join(", "))),
        }
    }

    fn token(
        self,
        env: SecretEnv,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, CredentialError> {
        let flag = "--clouddevice.auth-token-file";
        let file = match &self.auth_token_file {
            Some(path) => Some(read_secret(flag, path, warnings)?),
            None => None,
        };
        let token = one_of(file, env.auth_token, (flag, TOKEN_ENV))?;
        token.map(Credentials::Token).ok_or(CredentialError::None)
    }

    fn iam(
        self,
        env: SecretEnv,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, CredentialError> {
        let flag = "--iam.password-file";
        let file = match &self.iam_password_file {
            Some(path) => Some(read_secret(flag, path, warnings)?),
            None => None,
        };
        let password = one_of(file, env.iam_password, (flag, PASSWORD_ENV))?.ok_or(
            CredentialError::IamIncomplete(
                "a password: --iam.password-file or CLOUDDEVICE_IAM_PASSWORD",
            ),
        )?;
        let username = self
            .iam_username
            .ok_or(CredentialError::IamIncomplete("--iam.username"))?;
        let domain = self.iam_domain.ok_or(CredentialError::IamIncomplete(
            "--iam.domain (the account name)",
        ))?;
        let project = match (self.iam_project, self.iam_project_id) {
            (Some(name), None) => ProjectScope::Name(name),
            (None, Some(id)) => ProjectScope::Id(id),
            _ => {
                return Err(CredentialError::IamIncomplete(
                    "a project-scoped token: --iam.project (name) or --iam.project-id",
                ))
            }
        };
        let endpoint = endpoint_url(
            "--iam.endpoint",
            &self.iam_endpoint,
            "https://iam.myhuaweicloud.com",
        )?;
        Ok(Credentials::Iam(IamCredentials {
            endpoint,
            username,
            domain,
            project,
            password,
        }))
    }

    fn aksk(
        self,
        env: SecretEnv,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, CredentialError> {
        let (access_key, secret_key, file_security_token) = match &self.credentials_file {
            Some(path) => {
                if env.access_key.is_some() || env.secret_key.is_some() {
                    return Err(CredentialError::Both(
                        "--clouddevice.credentials-file",
                        "CLOUDDEVICE_ACCESS_KEY/CLOUDDEVICE_SECRET_KEY",
                    ));
                }
                let text = read_secret("--clouddevice.credentials-file", path, warnings)?;
                let (ak, sk, token) = parse_credentials_file(&text)
                    .ok_or_else(|| CredentialError::CredentialsFormat(path.clone()))?;
                (ak, Secret::new(sk), token.map(Secret::new))
            }
            None => {
                let ak = env
                    .access_key
                    .ok_or(CredentialError::AkSkIncomplete(ACCESS_KEY_ENV))?;
                let sk = env
                    .secret_key
                    .ok_or(CredentialError::AkSkIncomplete(SECRET_KEY_ENV))?;
                (ak.expose().to_string(), sk, None)
            }
        };
        Ok(Credentials::AkSk(AccessKey {
            access_key,
            secret_key,
            security_token: env.security_token.or(file_security_token),
            project_id: self.project_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CredentialArgs,
    }

    fn args(flags: &[&str]) -> CredentialArgs {
        Cli::try_parse_from(std::iter::once("x").chain(flags.iter().copied()))
            .unwrap()
            .args
    }

    fn secret(s: &str) -> Option<Secret> {
        Some(Secret::new(s))
    }

    fn resolve(flags: &[&str], env: SecretEnv) -> Result<Credentials, CredentialError> {
        args(flags).resolve(env, &mut Vec::new())
    }

    use crate::files::scratch::Scratch as TempDir;

    #[test]
    fn no_credentials_names_all_three_modes() {
        let err = resolve(&[], SecretEnv::default()).unwrap_err().to_string();
        for hint in [TOKEN_ENV, "--iam.username", ACCESS_KEY_ENV, "--demo"] {
            assert!(err.contains(hint), "{err}");
        }
    }

    #[test]
    fn two_modes_are_refused() {
        let env = SecretEnv {
            auth_token: secret("t"),
            access_key: secret("ak"),
            secret_key: secret("sk"),
            ..SecretEnv::default()
        };
        let err = resolve(&[], env).unwrap_err().to_string();
        assert!(err.contains("static token, AK/SK"), "{err}");
    }

    #[test]
    fn iam_mode_needs_user_domain_project_and_password() {
        let env = || SecretEnv {
            iam_password: secret("pw"),
            ..SecretEnv::default()
        };
        let err = resolve(&["--iam.username", "u"], env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--iam.domain"), "{err}");
        let err = resolve(&["--iam.username", "u", "--iam.domain", "d"], env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--iam.project"), "{err}");
        let err = resolve(
            &[
                "--iam.username",
                "u",
                "--iam.domain",
                "d",
                "--iam.project",
                "p",
            ],
            SecretEnv::default(),
        );
        assert!(err.unwrap_err().to_string().contains("password"));
        let ok = resolve(
            &[
                "--iam.username",
                "u",
                "--iam.domain",
                "d",
                "--iam.project-id",
                "pid",
            ],
            env(),
        )
        .unwrap();
        let Credentials::Iam(iam) = ok else {
            panic!("IAM mode expected")
        };
        assert_eq!((iam.username.as_str(), iam.domain.as_str()), ("u", "d"));
        assert_eq!(iam.project, ProjectScope::Id("pid".into()));
        assert_eq!(iam.password.expose(), "pw");
        assert_eq!(iam.endpoint.as_str(), "https://iam.myhuaweicloud.com/");
    }

    #[test]
    fn project_name_and_id_together_are_refused() {
        let cli = Cli::try_parse_from(["x", "--iam.project", "a", "--iam.project-id", "b"]);
        assert!(cli.is_err());
    }

    #[test]
    fn aksk_from_the_environment() {
        let env = SecretEnv {
            access_key: secret("AK1"),
            secret_key: secret("SK1"),
            security_token: secret("ST1"),
            ..SecretEnv::default()
        };
        let Credentials::AkSk(key) = resolve(&["--clouddevice.project-id", "p1"], env).unwrap()
        else {
            panic!("AK/SK mode expected")
        };
        assert_eq!(key.access_key, "AK1");
        assert_eq!(key.secret_key.expose(), "SK1");
        assert_eq!(key.security_token.unwrap().expose(), "ST1");
        assert_eq!(key.project_id.as_deref(), Some("p1"));
        let half = SecretEnv {
            access_key: secret("AK1"),
            ..SecretEnv::default()
        };
        assert!(resolve(&[], half)
            .unwrap_err()
            .to_string()
            .contains(SECRET_KEY_ENV));
    }

    #[test]
    fn credentials_files_in_both_formats() {
        let dir = TempDir::new();
        let plain = dir.secret(
            "plain",
            "# key pair\naccess_key = AK2\nsecret_key = \"SK2\"\n",
            0o600,
        );
        let Credentials::AkSk(key) = resolve(
            &["--clouddevice.credentials-file", &plain],
            SecretEnv::default(),
        )
        .unwrap() else {
            panic!("AK/SK mode expected")
        };
        assert_eq!(
            (key.access_key.as_str(), key.secret_key.expose()),
            ("AK2", "SK2")
        );
        let csv = dir.secret(
            "csv",
            "User Name,Access Key Id,Secret Access Key\nbot,AK3,SK3\n",
            0o600,
        );
        let Credentials::AkSk(key) = resolve(
            &["--clouddevice.credentials-file", &csv],
            SecretEnv::default(),
        )
        .unwrap() else {
            panic!("AK/SK mode expected")
        };
        assert_eq!(
            (key.access_key.as_str(), key.secret_key.expose()),
            ("AK3", "SK3")
        );
        let junk = dir.secret("junk", "hello\n", 0o600);
        let err = resolve(
            &["--clouddevice.credentials-file", &junk],
            SecretEnv::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, CredentialError::CredentialsFormat(_)),
            "{err}"
        );
    }

    #[test]
    #[cfg(unix)]
    fn a_secrets_file_others_can_read_gets_a_warning() {
        let dir = TempDir::new();
        let open = dir.secret("open", "tok", 0o644);
        let closed = dir.secret("closed", "tok", 0o600);
        let mut warnings = Vec::new();
        args(&["--clouddevice.auth-token-file", &open])
            .resolve(SecretEnv::default(), &mut warnings)
            .unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("chmod 600"), "{}", warnings[0]);
        warnings.clear();
        args(&["--clouddevice.auth-token-file", &closed])
            .resolve(SecretEnv::default(), &mut warnings)
            .unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn token_from_exactly_one_place() {
        let dir = TempDir::new();
        let file = dir.secret("token", "  tok-from-file\n", 0o600);
        let Credentials::Token(t) = resolve(
            &["--clouddevice.auth-token-file", &file],
            SecretEnv::default(),
        )
        .unwrap() else {
            panic!("token mode expected")
        };
        assert_eq!(t.expose(), "tok-from-file");
        let env = SecretEnv {
            auth_token: secret("x"),
            ..SecretEnv::default()
        };
        let err = resolve(&["--clouddevice.auth-token-file", &file], env).unwrap_err();
        assert!(matches!(err, CredentialError::Both(..)), "{err}");
        let err = resolve(
            &["--clouddevice.auth-token-file", "/nonexistent/t"],
            SecretEnv::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/t"), "{err}");
        let empty = dir.secret("empty", "\n", 0o600);
        let err = resolve(
            &["--clouddevice.auth-token-file", &empty],
            SecretEnv::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, CredentialError::File(SecretFileError::Empty { .. })),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let env = SecretEnv {
            iam_password: secret("pa55word-xyz"),
            ..SecretEnv::default()
        };
        let creds = resolve(
            &[
                "--iam.username",
                "u",
                "--iam.domain",
                "d",
                "--iam.project",
                "p",
            ],
            env,
        )
        .unwrap();
        assert!(!format!("{creds:?}").contains("pa55word"));
    }
}
