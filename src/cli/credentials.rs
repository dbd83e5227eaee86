//! The sign-in flags and the secrets the environment holds for them: a static token, an IAM
//! user's password, or an access key pair. They map into the accounts file's shape and are
//! checked by the same reader ([`super::account`]); secrets only ever come from a file or the
//! environment, never from a flag value.

use std::path::PathBuf;

use clap::Args;

use super::account::{
    AccessKeyShape, AccountShape, EnvLookup, IamShape, ACCESS_KEY_ENV, PASSWORD_ENV,
    SECRET_KEY_ENV, SECURITY_TOKEN_ENV, TOKEN_ENV,
};

#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// File holding a ready X-Auth-Token (alternative: the CLOUDDEVICE_AUTH_TOKEN environment variable).
    #[arg(long = "clouddevice.auth-token-file", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// IAM endpoint for password login.
    #[arg(
        long = "iam.endpoint",
        default_value = "https://iam.myhuaweicloud.com",
        value_name = "URL"
    )]
    pub iam_endpoint: String,

    /// IAM user name for password login.
    #[arg(long = "iam.username", value_name = "USER")]
    pub iam_username: Option<String>,

    /// Account (domain) name the IAM user belongs to.
    #[arg(long = "iam.domain", value_name = "ACCOUNT")]
    pub iam_domain: Option<String>,

    /// Project name the token is scoped to (or use --iam.project-id).
    #[arg(
        long = "iam.project",
        value_name = "NAME",
        conflicts_with = "iam_project_id"
    )]
    pub iam_project: Option<String>,

    /// Project ID the token is scoped to (or use --iam.project).
    #[arg(long = "iam.project-id", value_name = "ID")]
    pub iam_project_id: Option<String>,

    /// File holding the IAM user's password (alternative: the CLOUDDEVICE_IAM_PASSWORD environment variable).
    #[arg(long = "iam.password-file", value_name = "FILE")]
    pub iam_password_file: Option<PathBuf>,

    /// File holding an access key pair: `access_key = ...` and `secret_key = ...` lines, or the
    /// credentials.csv the console downloads (alternative: CLOUDDEVICE_ACCESS_KEY and CLOUDDEVICE_SECRET_KEY).
    #[arg(long = "clouddevice.credentials-file", value_name = "FILE")]
    pub credentials_file: Option<PathBuf>,

    /// Project ID sent as X-Project-Id with AK/SK-signed requests; without it, the project named after --clouddevice.region is looked up from IAM (--iam.endpoint), as Huawei's SDKs do.
    #[arg(long = "clouddevice.project-id", value_name = "ID")]
    pub project_id: Option<String>,

    /// The region of the account's phones (e.g. cn-north-4): with an access key and no --clouddevice.project-id, the project of that name is looked up once and sent as X-Project-Id.
    #[arg(long = "clouddevice.region", value_name = "REGION")]
    pub region: Option<String>,
}

impl CredentialArgs {
    /// The sign-in modes the flags and the environment set: none, one, or (a mistake) several.
    pub fn modes(&self, env: &EnvLookup) -> Vec<&'static str> {
        [
            (self.token_set(env), "static token"),
            (self.iam_set(env), "IAM password"),
            (self.aksk_set(env), "AK/SK"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }

    fn token_set(&self, env: &EnvLookup) -> bool {
        self.auth_token_file.is_some() || env.has(TOKEN_ENV)
    }

    fn iam_set(&self, env: &EnvLookup) -> bool {
        self.iam_username.is_some() || self.iam_password_file.is_some() || env.has(PASSWORD_ENV)
    }

    fn aksk_set(&self, env: &EnvLookup) -> bool {
        self.credentials_file.is_some() || env.has(ACCESS_KEY_ENV) || env.has(SECRET_KEY_ENV)
    }

    /// The flags' sign-in in the accounts file's shape, its variables named by their names in
    /// `env`: a mode is given when any of its flags or variables is, as an account's is when its
    /// key is written. The IAM endpoint is left to the defaults, which hold `--iam.endpoint`.
    pub fn shape(&self, env: &EnvLookup) -> AccountShape {
        let named = |name: &str| env.has(name).then(|| name.to_string());
        let (iam, aksk) = (self.iam_set(env), self.aksk_set(env));
        AccountShape {
            token_file: self.auth_token_file.clone(),
            token_env: named(TOKEN_ENV),
            iam: iam.then(|| IamShape {
                endpoint: None,
                username: self.iam_username.clone(),
                domain: self.iam_domain.clone(),
                project: self.iam_project.clone(),
                project_id: self.iam_project_id.clone(),
                password_file: self.iam_password_file.clone(),
                password_env: named(PASSWORD_ENV),
            }),
            access_key: aksk.then(|| AccessKeyShape {
                credentials_file: self.credentials_file.clone(),
                access_key_env: named(ACCESS_KEY_ENV),
                secret_key_env: named(SECRET_KEY_ENV),
                security_token_env: named(SECURITY_TOKEN_ENV),
            }),
            project_id: self.project_id.clone(),
            region: self.region.clone(),
            ..AccountShape::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::account::{self, AccountDefaults, Origin, SettingError};
    use crate::secret::Secret;
    use crate::upstream::credentials::{Credentials, ProjectScope};
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

    /// The flags' sign-in, read as the exporter reads it; `warnings` collects what it would log.
    fn resolve_warning(
        flags: &[&str],
        env: EnvLookup,
        warnings: &mut Vec<String>,
    ) -> Result<Credentials, SettingError> {
        let shape = args(flags).shape(&env);
        let defaults = AccountDefaults::example();
        account::read(shape, "flags", Origin::Flags, &defaults, &env, warnings)
            .map(|account| account.upstream.credentials)
    }

    fn resolve(flags: &[&str], env: EnvLookup) -> Result<Credentials, SettingError> {
        resolve_warning(flags, env, &mut Vec::new())
    }

    use crate::files::scratch::Scratch as TempDir;

    /// An IAM user's flags but its password.
    fn iam_user() -> Vec<&'static str> {
        "--iam.username u --iam.domain d --iam.project p"
            .split(' ')
            .collect()
    }

    #[test]
    fn no_credentials_names_all_three_modes() {
        let err = resolve(&[], EnvLookup::default()).unwrap_err().to_string();
        for hint in [TOKEN_ENV, "--iam.username", ACCESS_KEY_ENV, "--demo"] {
            assert!(err.contains(hint), "{err}");
        }
    }

    #[test]
    fn two_modes_are_refused() {
        let env = EnvLookup::of([
            (TOKEN_ENV.into(), Secret::new("t")),
            (ACCESS_KEY_ENV.into(), Secret::new("ak")),
            (SECRET_KEY_ENV.into(), Secret::new("sk")),
        ]);
        let err = resolve(&[], env).unwrap_err().to_string();
        assert!(
            err.contains("a token (--clouddevice.auth-token-file or CLOUDDEVICE_AUTH_TOKEN) and an access key")
                && err.contains("keep exactly one"),
            "{err}"
        );
    }

    #[test]
    fn iam_mode_needs_user_domain_project_and_password() {
        let env = || EnvLookup::of([(PASSWORD_ENV.into(), Secret::new("pw"))]);
        let err = resolve(&["--iam.username", "u"], env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--iam.domain"), "{err}");
        let err = resolve(&["--iam.username", "u", "--iam.domain", "d"], env())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--iam.project"), "{err}");
        let err = resolve(&iam_user(), EnvLookup::default());
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
        let env = EnvLookup::of([
            (ACCESS_KEY_ENV.into(), Secret::new("AK1")),
            (SECRET_KEY_ENV.into(), Secret::new("SK1")),
            (SECURITY_TOKEN_ENV.into(), Secret::new("ST1")),
        ]);
        let Credentials::AkSk(key) = resolve(&["--clouddevice.project-id", "p1"], env).unwrap()
        else {
            panic!("AK/SK mode expected")
        };
        assert_eq!(key.access_key, "AK1");
        assert_eq!(key.secret_key.expose(), "SK1");
        assert_eq!(key.security_token.unwrap().expose(), "ST1");
        assert_eq!(key.project_id.as_deref(), Some("p1"));
        let half = EnvLookup::of([(ACCESS_KEY_ENV.into(), Secret::new("AK1"))]);
        assert!(resolve(&[], half)
            .unwrap_err()
            .to_string()
            .contains(SECRET_KEY_ENV));
        // The project's id is sent on every request, as Huawei's SDKs do: given, or looked up by
        // the region.
        let pair = || {
            EnvLookup::of([
                (ACCESS_KEY_ENV.into(), Secret::new("AK1")),
                (SECRET_KEY_ENV.into(), Secret::new("SK1")),
            ])
        };
        let error = resolve(&[], pair()).unwrap_err().to_string();
        assert!(
            error.contains("--clouddevice.region") && error.contains("--clouddevice.project-id"),
            "{error}"
        );
        let Credentials::AkSk(key) =
            resolve(&["--clouddevice.region", "cn-north-4"], pair()).unwrap()
        else {
            panic!("AK/SK mode expected")
        };
        assert_eq!(
            (key.project_id, key.region.as_deref()),
            (None, Some("cn-north-4"))
        );
    }

    #[test]
    fn credentials_files_in_both_formats() {
        let dir = TempDir::new();
        let key_pair = |file: &str| {
            let flags = [
                "--clouddevice.credentials-file",
                file,
                "--clouddevice.region",
                "cn-north-4",
            ];
            match resolve(&flags, EnvLookup::default()) {
                Ok(Credentials::AkSk(key)) => (key.access_key, key.secret_key.expose().to_string()),
                other => panic!("AK/SK mode expected, not {other:?}"),
            }
        };
        let plain = dir.secret(
            "plain",
            "# key pair\naccess_key = AK2\nsecret_key = \"SK2\"\n",
            0o600,
        );
        assert_eq!(key_pair(&plain), ("AK2".into(), "SK2".into()));
        let csv = dir.secret(
            "csv",
            "User Name,Access Key Id,Secret Access Key\nbot,AK3,SK3\n",
            0o600,
        );
        assert_eq!(key_pair(&csv), ("AK3".into(), "SK3".into()));
        let junk = dir.secret("junk", "hello\n", 0o600);
        let err = resolve(
            &["--clouddevice.credentials-file", &junk],
            EnvLookup::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--clouddevice.credentials-file") && err.contains("holds no access_key"),
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
        resolve_warning(
            &["--clouddevice.auth-token-file", &open],
            EnvLookup::default(),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("chmod 600"), "{}", warnings[0]);
        warnings.clear();
        resolve_warning(
            &["--clouddevice.auth-token-file", &closed],
            EnvLookup::default(),
            &mut warnings,
        )
        .unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn token_from_exactly_one_place() {
        let dir = TempDir::new();
        let file = dir.secret("token", "  tok-from-file\n", 0o600);
        let Credentials::Token(t) = resolve(
            &["--clouddevice.auth-token-file", &file],
            EnvLookup::default(),
        )
        .unwrap() else {
            panic!("token mode expected")
        };
        assert_eq!(t.expose(), "tok-from-file");
        let env = EnvLookup::of([(TOKEN_ENV.into(), Secret::new("x"))]);
        let err = resolve(&["--clouddevice.auth-token-file", &file], env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--clouddevice.auth-token-file: set together with CLOUDDEVICE_AUTH_TOKEN"),
            "{err}"
        );
        let err = resolve(
            &["--clouddevice.auth-token-file", "/nonexistent/t"],
            EnvLookup::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/t"), "{err}");
        let empty = dir.secret("empty", "\n", 0o600);
        let err = resolve(
            &["--clouddevice.auth-token-file", &empty],
            EnvLookup::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.ends_with("is empty"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let env = EnvLookup::of([(PASSWORD_ENV.into(), Secret::new("pa55word-xyz"))]);
        let creds = resolve(&iam_user(), env).unwrap();
        assert!(!format!("{creds:?}").contains("pa55word"));
    }
}
