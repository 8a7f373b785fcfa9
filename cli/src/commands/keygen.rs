//! `wasmpak keygen`: a new Ed25519 key pair for signing packs, in the PEM formats openssl
//! reads and writes (PKCS#8 for the secret key, SPKI for the public key).

use std::path::PathBuf;

use wasmpak::SecretKey;

use crate::context::Context;
use crate::error::CliError;
use crate::output::say;

/// Arguments of `wasmpak keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the secret key (mode 0600; never overwritten)
    #[arg(value_name = "SECRET.pem")]
    pub secret: PathBuf,
    /// Where to write the public key [default: the secret key's path with .pub.pem]
    #[arg(long, value_name = "PUBLIC.pem")]
    pub public: Option<PathBuf>,
}

/// The public key's default path: `ci.pem` -> `ci.pub.pem`, `ci` -> `ci.pub.pem`.
pub fn public_path(secret: &std::path::Path) -> PathBuf {
    let name = secret.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".pem").unwrap_or(&name);
    secret.with_file_name(format!("{stem}.pub.pem"))
}

/// Runs `wasmpak keygen`.
pub fn run(_ctx: &Context, args: Args) -> Result<(), CliError> {
    let public_path = args.public.unwrap_or_else(|| public_path(&args.secret));
    if public_path == args.secret {
        return Err(CliError::usage(
            "the public key must go to another file than the secret key",
        ));
    }
    for path in [&args.secret, &public_path] {
        if path.exists() {
            return Err(CliError::failed(format!(
                "refusing to overwrite {}: remove it first if you mean to replace the key",
                path.display()
            )));
        }
    }
    let secret = SecretKey::generate().map_err(CliError::failed)?;
    let public = secret.public_key();
    secret.write_new(&args.secret).map_err(CliError::failed)?;
    if let Err(e) = public.write_new(&public_path) {
        let _ = std::fs::remove_file(&args.secret);
        return Err(CliError::failed(e));
    }
    say!("key id      {}", public.id())?;
    say!(
        "secret key  {}  (keep it in CI's secret store; never ship it)",
        args.secret.display()
    )?;
    say!(
        "public key  {}  (ship it to the nodes: verify --key, install --key)",
        public_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_path_replaces_the_pem_suffix() {
        assert_eq!(
            public_path("k/ci.pem".as_ref()),
            PathBuf::from("k/ci.pub.pem")
        );
        assert_eq!(public_path("ci".as_ref()), PathBuf::from("ci.pub.pem"));
    }
}
