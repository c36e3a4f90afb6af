//! Commit signature verification, SSH and OpenPGP, in process.
//!
//! The daemon refuses to apply a commit unless it is signed by a key the
//! operator trusts. Trust comes from two files: git's `allowed_signers`
//! (the format of `gpg.ssh.allowedSignersFile`, for SSH signatures) and an
//! OpenPGP keyring of public certificates. [`verify`] checks the `gpgsig`
//! header of one commit against them and returns a [`Verdict`].
//!
//! What this module must never do: run `ssh-keygen`, `gpg` or `git`
//! (verification is pure Rust, so it needs no agent, no home directory and
//! no trust database); trust a key that is not in [`Trust`]; panic on a
//! hostile signature; or echo the signed commit object in a message (only
//! key identifiers and short parser messages are reported).
//!
//! Clocks: SSH `valid-after`/`valid-before` are checked against the commit
//! time, as git does, and a key whose `valid-before` has passed at `now` is
//! refused too. OpenPGP key expiry and revocation are checked both at the
//! signature's creation time and at `now`. A key that is no longer valid
//! must not authorize new applies, whatever the commit claims.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    PublicKey as PgpPublicKey, PublicSubkey, Signature as PgpSignature, SignatureType,
    SubpacketData,
};
use pgp::types::{KeyDetails, Tag};
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, LineEnding, PublicKey as SshPublicKey, SshSig};

/// The largest `gpgsig` header accepted. Real signatures are well under
/// 2 KiB (an RSA-4096 OpenPGP signature is about 900 bytes armored); the
/// cap bounds parsing work on hostile commits.
pub const MAX_SIGNATURE_BYTES: usize = 64 * 1024;

/// The namespace git signs commits in (`ssh-keygen -Y sign -n git`).
const GIT_NAMESPACE: &str = "git";

/// What the allowed_signers parser accepts, for error messages.
const ALLOWED_SIGNERS_FORMAT: &str = "each line is `principals [options] keytype base64-key [comment]`; options are namespaces=\"git,…\", valid-after=\"YYYYMMDD[HHMM[SS]][Z]\" and valid-before=\"YYYYMMDD[HHMM[SS]][Z]\"";

/// SSH key types meridian can verify.
const SSH_KEY_TYPES: &str = "ssh-ed25519, ecdsa-sha2-nistp256, ecdsa-sha2-nistp384, ecdsa-sha2-nistp521, ssh-rsa, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com";

/// Errors loading trusted keys.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Neither an allowed_signers file nor a keyring was given.
    #[error(
        "signature verification needs trusted keys: give an allowed_signers file (SSH), an OpenPGP keyring, or both"
    )]
    NoTrust,
    /// A file could not be read.
    #[error("reading {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The operating system's message.
        message: String,
    },
    /// A line of an allowed_signers file is not acceptable.
    #[error("{origin}:{line}: {message}")]
    AllowedSigners {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// An allowed_signers file holds no signer.
    #[error("{origin}: holds no signers; {ALLOWED_SIGNERS_FORMAT}")]
    NoSigners {
        /// The file.
        origin: String,
    },
    /// An OpenPGP keyring is not acceptable.
    #[error("{origin}: {message}")]
    Keyring {
        /// The file.
        origin: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// Which kind of signature a commit carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// An SSHSIG signature (`gpg.format = ssh`).
    Ssh,
    /// An OpenPGP signature (`gpg.format = openpgp`, the default).
    OpenPgp,
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ssh => "ssh",
            Self::OpenPgp => "openpgp",
        })
    }
}

/// Who signed a verified commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// SSH or OpenPGP.
    pub kind: SignatureKind,
    /// The principals of the allowed_signers line that authorized the key
    /// (comma-separated, as written), or the certificate's primary user id.
    pub principal: String,
    /// `SHA256:…` for SSH; the certificate's primary key fingerprint in
    /// upper-case hex for OpenPGP (also when a signing subkey signed).
    pub fingerprint: String,
}

/// Why a commit is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The commit has no signature.
    #[error("the commit is not signed")]
    Unsigned,
    /// The signing key is not trusted: not in allowed_signers (or not for
    /// namespace git), or not in the OpenPGP keyring.
    #[error("signed by {key}, a key that is not trusted to sign commits")]
    UnknownKey {
        /// `SHA256:…` for SSH; the issuer fingerprint (or key id) for OpenPGP.
        key: String,
    },
    /// The signature is malformed or does not match the commit.
    #[error("the signature does not verify: {detail}")]
    BadSignature {
        /// What failed (never the signed data).
        detail: String,
    },
    /// The key is trusted but not at the time that counts: outside its
    /// allowed_signers validity window, expired, or revoked.
    #[error("signed by {key}, which is expired, revoked or not yet valid: {detail}")]
    ExpiredKey {
        /// The key, as in [`Refusal::UnknownKey`].
        key: String,
        /// Which limit was crossed, and when.
        detail: String,
    },
    /// A signature format meridian does not verify (x509/gitsign, a weak hash…).
    #[error("unsupported signature: {detail}")]
    Unsupported {
        /// What was found.
        detail: String,
    },
}

impl Refusal {
    /// A short stable label for `/status` and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::UnknownKey { .. } => "unknown key",
            Self::BadSignature { .. } => "bad signature",
            Self::ExpiredKey { .. } => "expired key",
            Self::Unsupported { .. } => "unsupported signature",
        }
    }

    fn bad(detail: impl Into<String>) -> Self {
        Self::BadSignature {
            detail: detail.into(),
        }
    }
}

/// The outcome of checking one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a trusted, valid key.
    Verified(Signer),
    /// Not acceptable, and why.
    Refused(Refusal),
}

impl Verdict {
    /// Whether the commit may be applied.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified(_))
    }
}

/// One line of an allowed_signers file.
#[derive(Debug, Clone)]
struct AllowedSigner {
    origin: String,
    line: usize,
    principals: Vec<String>,
    /// `None`: every namespace (no `namespaces` option).
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
    key: SshPublicKey,
}

impl AllowedSigner {
    fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|patterns| pattern_list_matches(patterns, namespace))
    }

    fn position(&self) -> String {
        format!("{}:{}", self.origin, self.line)
    }
}

/// A key of an OpenPGP certificate: the primary key or a subkey.
#[derive(Debug, Clone)]
enum ComponentKey {
    Primary(PgpPublicKey),
    Subkey(PublicSubkey),
}

/// What meridian needs to know about one key of a certificate, worked out
/// once when the keyring is loaded (self-signatures verified).
#[derive(Debug, Clone)]
struct Component {
    key: ComponentKey,
    fingerprint: Vec<u8>,
    key_id: Vec<u8>,
    created: i64,
    /// Unix seconds from which the key is expired.
    expires: Option<i64>,
    /// The reason, when a valid revocation signature exists.
    revoked: Option<String>,
    /// `Err` says why this key may not sign data.
    may_sign: Result<(), String>,
}

/// An OpenPGP certificate from the keyring.
#[derive(Debug, Clone)]
struct Certificate {
    fingerprint: String,
    user_id: String,
    /// The primary key first, then subkeys.
    components: Vec<Component>,
}

/// Keys trusted to sign commits: allowed SSH signers and OpenPGP certificates.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    ssh: Vec<AllowedSigner>,
    openpgp: Vec<Certificate>,
}

impl Trust {
    /// Reads the trusted keys from files.
    ///
    /// `allowed_signers`: git's allowed_signers file (the
    /// `gpg.ssh.allowedSignersFile` format: `principals [options] keytype
    /// base64key [comment]`; options `namespaces="git,…"`,
    /// `valid-after="YYYYMMDD[HHMM[SS]][Z]"`, `valid-before=…`; a time
    /// without `Z` is local time, as ssh-keygen reads it). `cert-authority`
    /// lines are refused with a positioned error: list the signing keys
    /// themselves. `keyring`: an OpenPGP keyring, armored or binary, with
    /// one or more public certificates. At least one must be given, and a
    /// given file must hold at least one key. Errors carry the file, the
    /// line (for allowed_signers) and what is allowed.
    pub fn load(
        allowed_signers: Option<&Path>,
        keyring: Option<&Path>,
    ) -> Result<Trust, TrustError> {
        if allowed_signers.is_none() && keyring.is_none() {
            return Err(TrustError::NoTrust);
        }
        let mut trust = Trust::default();
        if let Some(path) = allowed_signers {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| TrustError::Read {
                path: origin.clone(),
                message: e.to_string(),
            })?;
            trust.add_allowed_signers(&text, &origin)?;
        }
        if let Some(path) = keyring {
            let origin = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| TrustError::Read {
                path: origin.clone(),
                message: e.to_string(),
            })?;
            trust.add_openpgp_keyring(&bytes, &origin)?;
        }
        Ok(trust)
    }

    /// Parses an allowed_signers file; `origin` names the file in errors.
    pub fn from_allowed_signers(text: &str, origin: &str) -> Result<Trust, TrustError> {
        let mut trust = Trust::default();
        trust.add_allowed_signers(text, origin)?;
        Ok(trust)
    }

    /// Parses an OpenPGP keyring (armored or binary); `origin` names the
    /// file in errors.
    pub fn from_openpgp_keyring(bytes: &[u8], origin: &str) -> Result<Trust, TrustError> {
        let mut trust = Trust::default();
        trust.add_openpgp_keyring(bytes, origin)?;
        Ok(trust)
    }

    /// Adds the signers of an allowed_signers file. The file must hold at
    /// least one signer.
    pub fn add_allowed_signers(&mut self, text: &str, origin: &str) -> Result<(), TrustError> {
        let mut signers = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            if let Some(signer) = parse_allowed_signer(raw, origin, index + 1)? {
                signers.push(signer);
            }
        }
        if signers.is_empty() {
            return Err(TrustError::NoSigners {
                origin: origin.to_owned(),
            });
        }
        self.ssh.extend(signers);
        Ok(())
    }

    /// Adds the certificates of an OpenPGP keyring, armored (one or more
    /// `PGP PUBLIC KEY BLOCK`s) or binary (`gpg --export`). The keyring must
    /// hold at least one certificate and no secret key.
    pub fn add_openpgp_keyring(&mut self, bytes: &[u8], origin: &str) -> Result<(), TrustError> {
        let keyring_error = |message: String| TrustError::Keyring {
            origin: origin.to_owned(),
            message,
        };
        let mut keys = Vec::new();
        if looks_armored(bytes) {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| keyring_error("an armored keyring must be ASCII text".to_owned()))?;
            for block in armor_blocks(text) {
                let label = block
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("-----BEGIN ")
                    .trim_end_matches("-----")
                    .to_owned();
                if label != "PGP PUBLIC KEY BLOCK" {
                    return Err(keyring_error(format!(
                        "holds a `{label}`; a keyring holds public certificates only (`gpg --export --armor KEYID`)"
                    )));
                }
                let (parsed, _headers) = SignedPublicKey::from_armor_many(block.as_bytes())
                    .map_err(|e| {
                        keyring_error(format!("unreadable certificate block: {}", short(&e)))
                    })?;
                for key in parsed {
                    keys.push(key.map_err(|e| {
                        keyring_error(format!("certificate {}: {}", keys.len() + 1, short(&e)))
                    })?);
                }
            }
        } else {
            let parsed = SignedPublicKey::from_bytes_many(bytes)
                .map_err(|e| keyring_error(format!("unreadable keyring: {}", short(&e))))?;
            for key in parsed {
                keys.push(key.map_err(|e| {
                    keyring_error(format!(
                        "certificate {}: {} (a keyring holds public certificates only: `gpg --export KEYID`)",
                        keys.len() + 1,
                        short(&e)
                    ))
                })?);
            }
        }
        if keys.is_empty() {
            return Err(keyring_error(
                "holds no OpenPGP certificate; export one with `gpg --export --armor KEYID`"
                    .to_owned(),
            ));
        }
        let certificates = keys
            .iter()
            .map(certificate)
            .collect::<Result<Vec<_>, _>>()
            .map_err(keyring_error)?;
        self.openpgp.extend(certificates);
        Ok(())
    }

    /// Whether no key at all is trusted.
    pub fn is_empty(&self) -> bool {
        self.ssh.is_empty() && self.openpgp.is_empty()
    }

    /// How many allowed_signers lines are trusted.
    pub fn ssh_signer_count(&self) -> usize {
        self.ssh.len()
    }

    /// How many OpenPGP certificates are trusted.
    pub fn openpgp_certificate_count(&self) -> usize {
        self.openpgp.len()
    }
}

/// Checks a commit's signature.
///
/// `signature` and `signed_data` are what git2's
/// `Repository::extract_signature(&oid, None)` returns (the `gpgsig`
/// header and the commit object without it); `None` for `signature` when
/// the commit is not signed. `commit_time` is the committer time and `now`
/// the current time, both Unix seconds.
pub fn verify(
    trust: &Trust,
    signature: Option<&[u8]>,
    signed_data: &[u8],
    commit_time: i64,
    now: i64,
) -> Verdict {
    let Some(signature) = signature else {
        return Verdict::Refused(Refusal::Unsigned);
    };
    if signature.len() > MAX_SIGNATURE_BYTES {
        return Verdict::Refused(Refusal::bad(format!(
            "the signature is {} bytes, more than the {MAX_SIGNATURE_BYTES} accepted",
            signature.len()
        )));
    }
    let text = signature.trim_ascii_start();
    let outcome = if text.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        verify_ssh(trust, text, signed_data, commit_time, now)
    } else if text.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        verify_openpgp(trust, text, signed_data, now)
    } else if text.starts_with(b"-----BEGIN SIGNED MESSAGE-----") {
        Err(Refusal::Unsupported {
            detail:
                "an x509 (S/MIME, gitsign) signature; meridian verifies SSH and OpenPGP signatures"
                    .to_owned(),
        })
    } else if text.starts_with(b"-----BEGIN ") {
        let label: String = text
            .iter()
            .skip("-----BEGIN ".len())
            .take_while(|&&b| b != b'-' && b != b'\n')
            .take(40)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '?'
                }
            })
            .collect();
        Err(Refusal::Unsupported {
            detail: format!("a `{label}` block; meridian verifies SSH and OpenPGP signatures"),
        })
    } else {
        Err(Refusal::bad(
            "the gpgsig header is not an armored SSH or OpenPGP signature",
        ))
    };
    match outcome {
        Ok(signer) => Verdict::Verified(signer),
        Err(refusal) => Verdict::Refused(refusal),
    }
}

/// The largest commit object (headers, signature and message) read.
pub const MAX_COMMIT_BYTES: usize = 1024 * 1024;

/// Checks the signature of `commit` in `repo` (see [`verify`]); the
/// committer time is read from the commit.
pub fn verify_commit(
    trust: &Trust,
    repo: &git2::Repository,
    commit: git2::Oid,
    now: i64,
) -> Verdict {
    // A commit object is a few hundred bytes plus its message and
    // signature: one far larger is refused from its header, unread.
    if let Ok(odb) = repo.odb()
        && let Ok((size, _)) = odb.read_header(commit)
        && size > MAX_COMMIT_BYTES
    {
        return Verdict::Refused(Refusal::bad(format!(
            "commit {commit} is {size} bytes; commits may be at most {MAX_COMMIT_BYTES} bytes"
        )));
    }
    let commit_time = match repo.find_commit(commit) {
        Ok(found) => found.committer().when().seconds(),
        Err(error) => {
            return Verdict::Refused(Refusal::bad(format!(
                "commit {commit} cannot be read: {}",
                error.message()
            )));
        }
    };
    match repo.extract_signature(&commit, None) {
        Ok((signature, signed_data)) => {
            verify(trust, Some(&signature), &signed_data, commit_time, now)
        }
        // libgit2 reports "this commit is not signed" as not-found; the
        // commit itself was found above.
        Err(error) if error.code() == git2::ErrorCode::NotFound => {
            Verdict::Refused(Refusal::Unsigned)
        }
        Err(error) => Verdict::Refused(Refusal::bad(format!(
            "the signature of commit {commit} cannot be read: {}",
            error.message()
        ))),
    }
}

// ---------------------------------------------------------------------------
// SSH

fn verify_ssh(
    trust: &Trust,
    armored: &[u8],
    signed_data: &[u8],
    commit_time: i64,
    now: i64,
) -> Result<Signer, Refusal> {
    let sig = SshSig::from_pem(armored)
        .map_err(|e| Refusal::bad(format!("malformed SSH signature: {}", short(&e))))?;
    // The decoder tolerates length prefixes longer than their contents,
    // and some fields are outside the signed bytes: accept only the one
    // canonical encoding, so a commit's signature has exactly one form.
    let canonical = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| Refusal::bad(format!("malformed SSH signature: {}", short(&e))))?;
    if without_whitespace(canonical.as_bytes()) != without_whitespace(armored) {
        return Err(Refusal::bad(
            "the SSH signature is not in canonical SSHSIG encoding",
        ));
    }
    // OpenSSH writes version 1; the version is outside the signed bytes,
    // so anything else is refused rather than silently accepted.
    if sig.version() != 1 {
        return Err(Refusal::bad(format!(
            "SSH signature version {} (only version 1 exists)",
            sig.version()
        )));
    }
    if sig.namespace() != GIT_NAMESPACE {
        return Err(Refusal::bad(format!(
            "the SSH signature is for namespace `{}`, git commits are signed in namespace `{GIT_NAMESPACE}`",
            printable(sig.namespace())
        )));
    }
    let signing_key = SshPublicKey::from(sig.public_key().clone());
    let fingerprint = signing_key.fingerprint(HashAlg::Sha256).to_string();
    let entries: Vec<&AllowedSigner> = trust
        .ssh
        .iter()
        .filter(|entry| entry.key.key_data() == sig.public_key())
        .filter(|entry| entry.allows_namespace(GIT_NAMESPACE))
        .collect();
    if entries.is_empty() {
        return Err(Refusal::UnknownKey { key: fingerprint });
    }
    signing_key
        .verify(GIT_NAMESPACE, signed_data, &sig)
        .map_err(|e| Refusal::bad(format!("SSH signature by {fingerprint}: {}", short(&e))))?;
    let mut first_problem = None;
    for entry in entries {
        match ssh_validity(entry, commit_time, now) {
            Ok(()) => {
                return Ok(Signer {
                    kind: SignatureKind::Ssh,
                    principal: entry.principals.join(","),
                    fingerprint,
                });
            }
            Err(detail) => {
                first_problem.get_or_insert(detail);
            }
        }
    }
    Err(Refusal::ExpiredKey {
        key: fingerprint,
        detail: first_problem.unwrap_or_default(),
    })
}

/// Git checks `valid-after`/`valid-before` against the commit time; a
/// window that closed before `now` also refuses, so a retired key cannot
/// authorize new applies of old commits.
fn ssh_validity(entry: &AllowedSigner, commit_time: i64, now: i64) -> Result<(), String> {
    if let Some(after) = entry.valid_after
        && commit_time < after
    {
        return Err(format!(
            "{}: valid-after {} is later than the commit time {}",
            entry.position(),
            show_time(after),
            show_time(commit_time)
        ));
    }
    if let Some(before) = entry.valid_before {
        if commit_time >= before {
            return Err(format!(
                "{}: valid-before {} is not later than the commit time {}",
                entry.position(),
                show_time(before),
                show_time(commit_time)
            ));
        }
        if now >= before {
            return Err(format!(
                "{}: valid-before {} has passed",
                entry.position(),
                show_time(before)
            ));
        }
    }
    Ok(())
}

/// Parses one allowed_signers line; `None` for blank and comment lines.
fn parse_allowed_signer(
    raw: &str,
    origin: &str,
    line: usize,
) -> Result<Option<AllowedSigner>, TrustError> {
    let error = |message: String| TrustError::AllowedSigners {
        origin: origin.to_owned(),
        line,
        message,
    };
    let text = raw.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let mut rest = text;
    let principals_field = next_field(&mut rest).map_err(error)?;
    let principals: Vec<String> = principals_field
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if principals.is_empty() {
        return Err(error(format!(
            "no principals before the key; {ALLOWED_SIGNERS_FORMAT}"
        )));
    }
    let mut field = next_field(&mut rest).map_err(error)?;
    let mut options = SignerOptions::default();
    if !looks_like_key_type(&field) {
        if field.is_empty() {
            return Err(error(format!(
                "no key after the principals; {ALLOWED_SIGNERS_FORMAT}"
            )));
        }
        options = parse_options(&field).map_err(error)?;
        field = next_field(&mut rest).map_err(error)?;
        if field.is_empty() {
            return Err(error(format!(
                "no key after the options; {ALLOWED_SIGNERS_FORMAT}"
            )));
        }
    }
    if field.ends_with("-cert-v01@openssh.com") {
        return Err(error(format!(
            "`{field}` is a certificate; list the signing keys themselves (key types: {SSH_KEY_TYPES})"
        )));
    }
    if !is_key_type(&field) {
        return Err(error(format!(
            "`{}` is not a key type meridian verifies; key types: {SSH_KEY_TYPES}",
            printable(&field)
        )));
    }
    let key_type = field;
    let base64 = next_field(&mut rest).map_err(error)?;
    if base64.is_empty() {
        return Err(error(format!(
            "no base64 key after `{key_type}`; {ALLOWED_SIGNERS_FORMAT}"
        )));
    }
    let key = SshPublicKey::from_openssh(&format!("{key_type} {base64}"))
        .map_err(|e| error(format!("not a valid {key_type} public key: {}", short(&e))))?;
    if key.algorithm().as_str() != key_type {
        return Err(error(format!(
            "the key says it is {}, the line says {key_type}",
            key.algorithm().as_str()
        )));
    }
    if let (Some(after), Some(before)) = (options.valid_after, options.valid_before)
        && after >= before
    {
        return Err(error(
            "valid-after is not earlier than valid-before, so the key is never valid".to_owned(),
        ));
    }
    Ok(Some(AllowedSigner {
        origin: origin.to_owned(),
        line,
        principals,
        namespaces: options.namespaces,
        valid_after: options.valid_after,
        valid_before: options.valid_before,
        key,
    }))
}

/// Whether a field names a key type (supported or not) rather than options.
fn looks_like_key_type(field: &str) -> bool {
    !field.contains('=')
        && (field.parse::<Algorithm>().is_ok()
            || ["ssh-", "ecdsa-", "sk-"]
                .iter()
                .any(|prefix| field.starts_with(prefix)))
}

/// Whether meridian verifies signatures by keys of this type.
fn is_key_type(field: &str) -> bool {
    match field.parse::<Algorithm>() {
        Ok(Algorithm::Ed25519 | Algorithm::Rsa { .. } | Algorithm::SkEd25519) => true,
        Ok(Algorithm::Ecdsa { curve }) => matches!(
            curve,
            EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521
        ),
        Ok(Algorithm::SkEcdsaSha2NistP256) => true,
        _ => false,
    }
}

/// Takes the next whitespace-separated field from `rest`. Double quotes
/// group (spaces inside them do not split) and are kept, except around a
/// whole field, as OpenSSH reads principals and options.
fn next_field(rest: &mut &str) -> Result<String, String> {
    let text = rest.trim_start();
    let mut quoted = false;
    let mut escaped = false;
    let mut end = text.len();
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                end = index;
                break;
            }
            _ => {}
        }
    }
    if quoted {
        return Err(format!(
            "unterminated double quote in `{}`",
            printable(text)
        ));
    }
    let field = &text[..end];
    *rest = &text[end..];
    let field = match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner,
        _ => field,
    };
    Ok(field.to_owned())
}

#[derive(Debug, Default)]
struct SignerOptions {
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// Parses `name[="value"],…`; values may be double-quoted (then they may
/// hold commas, and `\"` is a quote).
fn parse_options(field: &str) -> Result<SignerOptions, String> {
    let mut options = SignerOptions::default();
    let mut seen = BTreeSet::new();
    for (name, value) in split_options(field)? {
        let lower = name.to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(format!("option `{lower}` is given twice"));
        }
        let need_value = |value: Option<String>| {
            value
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("option `{lower}` needs a value, as in {lower}=\"…\""))
        };
        match lower.as_str() {
            "namespaces" => {
                let value = need_value(value)?;
                let list: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                options.namespaces = Some(list);
            }
            "valid-after" => options.valid_after = Some(parse_ssh_time(&need_value(value)?)?),
            "valid-before" => options.valid_before = Some(parse_ssh_time(&need_value(value)?)?),
            "cert-authority" => {
                return Err(
                    "cert-authority is not supported: list the signing keys themselves; allowed options: namespaces, valid-after, valid-before"
                        .to_owned(),
                );
            }
            _ => {
                return Err(format!(
                    "unknown option `{}`; allowed options: namespaces=\"git,…\", valid-after=\"YYYYMMDD[HHMM[SS]][Z]\", valid-before=\"YYYYMMDD[HHMM[SS]][Z]\"",
                    printable(&name)
                ));
            }
        }
    }
    Ok(options)
}

fn split_options(field: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut options = Vec::new();
    let mut chars = field.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == ',' || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            let mut text = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'"') => {
                            text.push('"');
                            chars.next();
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => text.push(c),
                    }
                }
                if !closed {
                    return Err(format!(
                        "option `{}` has an unterminated quote",
                        printable(&name)
                    ));
                }
                if chars.peek().is_some_and(|&c| c != ',') {
                    return Err(format!(
                        "unexpected text after the quoted value of option `{}`",
                        printable(&name)
                    ));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    text.push(c);
                    chars.next();
                }
            }
            value = Some(text);
        }
        if name.is_empty() {
            return Err(format!("empty option in `{}`", printable(field)));
        }
        options.push((name, value));
        match chars.next() {
            Some(',') => continue,
            _ => break,
        }
    }
    Ok(options)
}

/// OpenSSH's `YYYYMMDD[HHMM[SS]][Z]`: UTC with `Z`, local time without,
/// as ssh-keygen reads it.
fn parse_ssh_time(value: &str) -> Result<i64, String> {
    let expected = || {
        format!(
            "`{}` is not a time: expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally ending in Z for UTC",
            printable(value)
        )
    };
    let (digits, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(digits) => (digits, true),
        None => (value, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(expected());
    }
    let number = |range: std::ops::Range<usize>| -> i16 {
        digits.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    let narrow = |n: i16| i8::try_from(n).map_err(|_| expected());
    let datetime = jiff::civil::DateTime::new(
        number(0..4),
        narrow(number(4..6))?,
        narrow(number(6..8))?,
        narrow(number(8..10))?,
        narrow(number(10..12))?,
        narrow(number(12..14))?,
        0,
    )
    .map_err(|_| expected())?;
    let zone = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let zoned = datetime.to_zoned(zone).map_err(|_| expected())?;
    Ok(zoned.timestamp().as_second())
}

/// OpenSSH's pattern lists: `*` and `?` wildcards, `!` negates; a negated
/// match wins over any positive one.
fn pattern_list_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if wildcard_match(pattern.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative glob with single-star backtracking: linear in practice,
    // never exponential on hostile patterns.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

// ---------------------------------------------------------------------------
// OpenPGP

fn verify_openpgp(
    trust: &Trust,
    armored: &[u8],
    signed_data: &[u8],
    now: i64,
) -> Result<Signer, Refusal> {
    let (signatures, _headers) = DetachedSignature::from_armor_many(armored)
        .map_err(|e| Refusal::bad(format!("malformed OpenPGP signature: {}", short(&e))))?;
    let mut first_refusal = None;
    // A commit signed by several keys carries several packets; one trusted,
    // valid signature is enough. The size cap bounds how many there are.
    for signature in signatures {
        let outcome = signature
            .map_err(|e| Refusal::bad(format!("malformed OpenPGP signature: {}", short(&e))))
            .and_then(|signature| {
                verify_openpgp_one(trust, &signature.signature, signed_data, now)
            });
        match outcome {
            Ok(signer) => return Ok(signer),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    Err(first_refusal.unwrap_or_else(|| Refusal::bad("the OpenPGP block holds no signature")))
}

fn verify_openpgp_one(
    trust: &Trust,
    signature: &PgpSignature,
    signed_data: &[u8],
    now: i64,
) -> Result<Signer, Refusal> {
    match signature.typ() {
        Some(SignatureType::Binary | SignatureType::Text) => {}
        other => {
            return Err(Refusal::bad(format!(
                "an OpenPGP signature of type {other:?}, not a signature over data"
            )));
        }
    }
    match signature.hash_alg() {
        Some(
            HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha224
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512,
        ) => {}
        Some(other) => {
            return Err(Refusal::Unsupported {
                detail: format!(
                    "an OpenPGP signature with hash {other}, which is too weak (SHA-2 or SHA-3 required)"
                ),
            });
        }
        None => {
            return Err(Refusal::Unsupported {
                detail: format!("an OpenPGP signature of version {:?}", signature.version()),
            });
        }
    }
    let fingerprints: Vec<Vec<u8>> = signature
        .issuer_fingerprint()
        .iter()
        .map(|f| f.as_bytes().to_vec())
        .collect();
    let key_ids: Vec<Vec<u8>> = signature
        .issuer_key_id()
        .iter()
        .map(|id| id.as_ref().to_vec())
        .collect();
    let issuer = fingerprints
        .first()
        .or(key_ids.first())
        .map(|bytes| hex_upper(bytes))
        .unwrap_or_else(|| "(no issuer)".to_owned());
    let candidates: Vec<(&Certificate, &Component)> = trust
        .openpgp
        .iter()
        .flat_map(|cert| {
            cert.components
                .iter()
                .map(move |component| (cert, component))
        })
        .filter(|(_, component)| {
            fingerprints.contains(&component.fingerprint) || key_ids.contains(&component.key_id)
        })
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::UnknownKey { key: issuer });
    }
    let mut first_refusal = None;
    for (cert, component) in candidates {
        match check_openpgp_with(signature, signed_data, now, cert, component) {
            Ok(signer) => return Ok(signer),
            Err(refusal) => {
                first_refusal.get_or_insert(refusal);
            }
        }
    }
    Err(first_refusal.unwrap_or(Refusal::UnknownKey { key: issuer }))
}

fn check_openpgp_with(
    signature: &PgpSignature,
    signed_data: &[u8],
    now: i64,
    cert: &Certificate,
    component: &Component,
) -> Result<Signer, Refusal> {
    let key_name = hex_upper(&component.fingerprint);
    let verified = match &component.key {
        ComponentKey::Primary(key) => signature.verify(key, signed_data),
        ComponentKey::Subkey(key) => signature.verify(key, signed_data),
    };
    verified
        .map_err(|e| Refusal::bad(format!("OpenPGP signature by {key_name}: {}", short(&e))))?;
    let created = signature
        .created()
        .map(|t| i64::from(t.as_secs()))
        .ok_or_else(|| Refusal::bad("the OpenPGP signature has no creation time"))?;
    if created < component.created {
        return Err(Refusal::bad(format!(
            "the OpenPGP signature ({}) is older than its key {key_name} ({})",
            show_time(created),
            show_time(component.created)
        )));
    }
    if let Some(validity) = signature.signature_expiration_time()
        && validity.as_secs() > 0
    {
        let expires = created.saturating_add(i64::from(validity.as_secs()));
        if now >= expires {
            return Err(Refusal::bad(format!(
                "the OpenPGP signature itself expired at {}",
                show_time(expires)
            )));
        }
    }
    if let Err(why) = &component.may_sign {
        return Err(Refusal::bad(format!("key {key_name} {why}")));
    }
    // The certificate's primary key governs its subkeys: a revoked or
    // expired primary invalidates every subkey.
    let primary = cert.components.first();
    for (label, part) in [("key", Some(component)), ("primary key", primary)] {
        let Some(part) = part else { continue };
        if let Some(reason) = &part.revoked {
            return Err(Refusal::ExpiredKey {
                key: key_name.clone(),
                detail: format!(
                    "{label} {} is revoked ({reason})",
                    hex_upper(&part.fingerprint)
                ),
            });
        }
        if let Some(expires) = part.expires {
            for (when, at) in [("the signature was made", created), ("now", now)] {
                if at >= expires {
                    return Err(Refusal::ExpiredKey {
                        key: key_name.clone(),
                        detail: format!(
                            "{label} {} expired at {}, before {when} ({})",
                            hex_upper(&part.fingerprint),
                            show_time(expires),
                            show_time(at)
                        ),
                    });
                }
            }
        }
    }
    Ok(Signer {
        kind: SignatureKind::OpenPgp,
        principal: cert.user_id.clone(),
        fingerprint: cert.fingerprint.clone(),
    })
}

/// Works out, once, what each key of a certificate may do: its
/// self-signatures are verified and only valid ones count; the newest
/// valid one decides expiry and key flags.
///
/// A certificate without any valid self-signature (user id binding or
/// direct key signature) is refused: nothing in it says who it is or
/// until when it is valid.
fn certificate(cert: &SignedPublicKey) -> Result<Certificate, String> {
    let primary = &cert.primary_key;
    let primary_created = i64::from(primary.created_at().as_secs());

    let mut newest_self: Option<&PgpSignature> = None;
    let mut user_id = None;
    let mut primary_user_id = None;
    for user in &cert.details.users {
        let mut newest_cert: Option<&PgpSignature> = None;
        let mut newest_revocation: Option<i64> = None;
        for sig in &user.signatures {
            if sig
                .verify_certification(primary, Tag::UserId, &user.id)
                .is_err()
            {
                continue;
            }
            if sig.typ() == Some(SignatureType::CertRevocation) {
                newest_revocation = newest_revocation.max(Some(sig_created(sig)));
            } else if newest_cert.is_none_or(|n| sig_created(sig) >= sig_created(n)) {
                newest_cert = Some(sig);
            }
        }
        let Some(binding) = newest_cert else { continue };
        if newest_revocation.is_some_and(|r| r >= sig_created(binding)) {
            continue;
        }
        let name = String::from_utf8_lossy(user.id.id()).into_owned();
        if binding.is_primary() && primary_user_id.is_none() {
            primary_user_id = Some(name.clone());
        }
        user_id.get_or_insert(name);
        if newest_self.is_none_or(|n| sig_created(binding) >= sig_created(n)) {
            newest_self = Some(binding);
        }
    }
    for sig in &cert.details.direct_signatures {
        if sig.verify_key(primary).is_ok()
            && newest_self.is_none_or(|n| sig_created(sig) >= sig_created(n))
        {
            newest_self = Some(sig);
        }
    }
    if newest_self.is_none() {
        return Err(format!(
            "certificate {} has no valid self-signature (user id binding or direct key signature)",
            hex_upper(primary.fingerprint().as_bytes())
        ));
    }
    let primary_revoked = cert
        .details
        .revocation_signatures
        .iter()
        .find(|sig| sig.verify_key(primary).is_ok())
        .map(revocation_reason);
    let primary_may_sign = match newest_self {
        Some(sig) if has_key_flags(sig) && !sig.key_flags().sign() => {
            Err("is not marked for signing in its certificate".to_owned())
        }
        _ => Ok(()),
    };
    let mut components = vec![Component {
        key: ComponentKey::Primary(primary.clone()),
        fingerprint: primary.fingerprint().as_bytes().to_vec(),
        key_id: primary.legacy_key_id().as_ref().to_vec(),
        created: primary_created,
        expires: newest_self.and_then(|sig| expiry(primary_created, sig)),
        revoked: primary_revoked,
        may_sign: primary_may_sign,
    }];

    for subkey in &cert.public_subkeys {
        let created = i64::from(subkey.key.created_at().as_secs());
        let mut binding: Option<&PgpSignature> = None;
        let mut revoked = None;
        for sig in &subkey.signatures {
            if sig.verify_subkey_binding(primary, &subkey.key).is_err() {
                continue;
            }
            match sig.typ() {
                Some(SignatureType::SubkeyRevocation) => {
                    revoked.get_or_insert_with(|| revocation_reason(sig));
                }
                Some(SignatureType::SubkeyBinding)
                    if binding.is_none_or(|b| sig_created(sig) >= sig_created(b)) =>
                {
                    binding = Some(sig);
                }
                _ => {}
            }
        }
        let may_sign = match binding {
            None => Err("is not bound to its certificate by a valid binding signature".to_owned()),
            Some(sig) if !sig.key_flags().sign() => {
                Err("is a subkey not marked for signing".to_owned())
            }
            Some(sig) => match sig.embedded_signature() {
                Some(back)
                    if back
                        .verify_primary_key_binding(&subkey.key, primary)
                        .is_ok() =>
                {
                    Ok(())
                }
                _ => Err(
                    "is a signing subkey without a valid primary key binding (back-signature)"
                        .to_owned(),
                ),
            },
        };
        components.push(Component {
            key: ComponentKey::Subkey(subkey.key.clone()),
            fingerprint: subkey.key.fingerprint().as_bytes().to_vec(),
            key_id: subkey.key.legacy_key_id().as_ref().to_vec(),
            created,
            expires: binding.and_then(|sig| expiry(created, sig)),
            revoked,
            may_sign,
        });
    }

    Ok(Certificate {
        fingerprint: hex_upper(primary.fingerprint().as_bytes()),
        user_id: primary_user_id
            .or(user_id)
            .unwrap_or_else(|| "(no valid user id)".to_owned()),
        components,
    })
}

fn sig_created(sig: &PgpSignature) -> i64 {
    sig.created().map_or(0, |t| i64::from(t.as_secs()))
}

fn has_key_flags(sig: &PgpSignature) -> bool {
    sig.config().is_some_and(|config| {
        config
            .hashed_subpackets()
            .any(|packet| matches!(packet.data, SubpacketData::KeyFlags(_)))
    })
}

/// Key expiration is relative to the key's creation; zero means never.
fn expiry(key_created: i64, sig: &PgpSignature) -> Option<i64> {
    sig.key_expiration_time()
        .filter(|d| d.as_secs() > 0)
        .map(|d| key_created.saturating_add(i64::from(d.as_secs())))
}

/// Any valid revocation refuses, whatever its reason: meridian checks at
/// apply time, and a retired key must not authorize new applies.
fn revocation_reason(sig: &PgpSignature) -> String {
    let code = sig
        .revocation_reason_code()
        .map_or_else(|| "no reason given".to_owned(), |code| format!("{code:?}"));
    match sig.revocation_reason_string() {
        Some(text) if !text.is_empty() => {
            format!("{code}: {}", printable(&String::from_utf8_lossy(text)))
        }
        _ => code,
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn looks_armored(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN ")
}

/// Splits armored text into its `-----BEGIN …-----` … `-----END …-----`
/// blocks (a keyring file may concatenate several exports).
fn armor_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.starts_with("-----BEGIN ") {
            current = Some(String::new());
        }
        if let Some(block) = current.as_mut() {
            block.push_str(trimmed);
            block.push('\n');
        }
        if trimmed.starts_with("-----END ")
            && let Some(block) = current.take()
        {
            blocks.push(block);
        }
    }
    if let Some(block) = current {
        // Unterminated: let the armor parser report it.
        blocks.push(block);
    }
    blocks
}

fn without_whitespace(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn show_time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| format!("@{seconds}"), |t| t.to_string())
}

/// A library's error message, on one line and bounded, for refusals
/// shown in `/status` and logs.
fn short(error: &dyn fmt::Display) -> String {
    printable(&error.to_string())
}

/// Text from a file or signature, safe and short enough for one line.
fn printable(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(160)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 160 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    use tempfile::TempDir;

    /// A public key for parser tests (no private half is kept anywhere).
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaCEj6SRkLHVHOLZLkMm7AdpteMMlkWYeE4SbX9LDrD";
    const P256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBH1c5Ai2d0BGsvtq0rLkCdMEdFgLzdtmCHOGdEBn8lcIqimeHsFK0j09IdSVbaTtJx0loOd/20uvQbtlgYJzrjI=";

    /// 2025-06-01T12:00:00Z: the committer time of every fixture commit.
    const COMMIT_TIME: i64 = 1_748_779_200;
    /// A day later: `now` for the SSH tests, which need no real clock.
    const NOW: i64 = COMMIT_TIME + 86_400;

    // -- allowed_signers parsing ------------------------------------------

    fn parse(text: &str) -> Trust {
        Trust::from_allowed_signers(text, "allowed_signers").expect("the file parses")
    }

    fn parse_error(text: &str) -> String {
        Trust::from_allowed_signers(text, "allowed_signers")
            .expect_err("the file is refused")
            .to_string()
    }

    #[test]
    fn allowed_signers_skip_comments_and_blank_lines_and_keep_line_numbers() {
        let trust = parse(&format!(
            "# deploy keys\n\n   \nalice@example.com {ED25519} alice laptop\n  # indented comment\nbob@example.com {P256}\r\n"
        ));
        assert_eq!(trust.ssh_signer_count(), 2);
        assert_eq!(trust.ssh[0].line, 4);
        assert_eq!(trust.ssh[0].principals, ["alice@example.com"]);
        assert_eq!(trust.ssh[1].line, 6);
        assert_eq!(trust.ssh[1].key.algorithm().as_str(), "ecdsa-sha2-nistp256");
        assert!(!trust.is_empty());
        assert_eq!(trust.openpgp_certificate_count(), 0);
    }

    #[test]
    fn allowed_signers_multiple_and_quoted_principals() {
        let trust = parse(&format!(
            "a@x,b@y {ED25519}\n\"carol@example.com,dave@example.com\" {P256}\n"
        ));
        assert_eq!(trust.ssh[0].principals, ["a@x", "b@y"]);
        assert_eq!(
            trust.ssh[1].principals,
            ["carol@example.com", "dave@example.com"]
        );
    }

    #[test]
    fn allowed_signers_quoted_option_values_may_hold_commas() {
        let trust = parse(&format!(
            "alice@example.com namespaces=\"file,git\",valid-after=\"20250101Z\",VALID-BEFORE=20260101000000Z {ED25519}\n"
        ));
        let signer = &trust.ssh[0];
        assert_eq!(
            signer.namespaces.as_deref(),
            Some(&["file".to_owned(), "git".to_owned()][..])
        );
        assert_eq!(signer.valid_after, Some(1_735_689_600));
        assert_eq!(signer.valid_before, Some(1_767_225_600));
        assert!(signer.allows_namespace("git"));
        assert!(!signer.allows_namespace("email"));
    }

    #[test]
    fn allowed_signers_errors_name_the_file_the_line_and_what_is_allowed() {
        let error = parse_error(&format!(
            "# ok\nalice@example.com colour=\"red\" {ED25519}\n"
        ));
        assert!(error.starts_with("allowed_signers:2: "), "{error}");
        assert!(error.contains("unknown option `colour`"), "{error}");
        assert!(error.contains("namespaces="), "{error}");
        assert!(error.contains("valid-before="), "{error}");

        let error = parse_error(&format!("alice@example.com cert-authority {ED25519}\n"));
        assert!(
            error.starts_with("allowed_signers:1: cert-authority is not supported"),
            "{error}"
        );

        let error = parse_error(&format!(
            "alice@example.com valid-after=\"2025-01-01\" {ED25519}\n"
        ));
        assert!(
            error.contains("expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS"),
            "{error}"
        );

        let error = parse_error(&format!(
            "alice@example.com valid-before=\"20251301\" {ED25519}\n"
        ));
        assert!(error.contains("`20251301` is not a time"), "{error}");

        let error = parse_error("alice@example.com ssh-dss AAAAB3NzaC1kc3MAAACBAP\n");
        assert!(
            error.starts_with("allowed_signers:1: `ssh-dss` is not a key type"),
            "{error}"
        );
        assert!(error.contains("ssh-ed25519"), "{error}");

        let error = parse_error("alice@example.com\n");
        assert!(error.contains("no key after the principals"), "{error}");

        let error = parse_error("alice@example.com namespaces=\"git\"\n");
        assert!(error.contains("no key after the options"), "{error}");

        let error = parse_error("alice@example.com ssh-ed25519 !!!notbase64!!!\n");
        assert!(
            error.contains("not a valid ssh-ed25519 public key"),
            "{error}"
        );

        let error = parse_error("alice@example.com ssh-ed25519\n");
        assert!(
            error.contains("no base64 key after `ssh-ed25519`"),
            "{error}"
        );

        let error = parse_error(&format!("alice@example.com namespaces=\"git {ED25519}\n"));
        assert!(error.contains("unterminated double quote"), "{error}");

        let key_only = ED25519.trim_start_matches("ssh-ed25519 ");
        let error = parse_error(&format!(
            "alice@example.com ecdsa-sha2-nistp256 {key_only}\n"
        ));
        assert!(error.starts_with("allowed_signers:1: "), "{error}");

        let error = parse_error(&format!(
            "alice@example.com valid-after=20260101Z,valid-before=20250101Z {ED25519}\n"
        ));
        assert!(error.contains("never valid"), "{error}");

        let error = parse_error(&format!(
            "alice@example.com namespaces=git,namespaces=file {ED25519}\n"
        ));
        assert!(error.contains("given twice"), "{error}");

        let error = parse_error("ca@example.com ssh-ed25519-cert-v01@openssh.com AAAA\n");
        assert!(error.contains("is a certificate"), "{error}");

        let error = parse_error("# only comments\n\n");
        assert!(
            error.starts_with("allowed_signers: holds no signers"),
            "{error}"
        );
        assert!(
            error.contains("principals [options] keytype base64-key"),
            "{error}"
        );
    }

    #[test]
    fn trust_load_needs_a_file_and_names_unreadable_ones() {
        assert!(matches!(Trust::load(None, None), Err(TrustError::NoTrust)));
        let missing = Path::new("/nonexistent/allowed_signers");
        let error = Trust::load(Some(missing), None).expect_err("missing file");
        assert!(
            error
                .to_string()
                .starts_with("reading /nonexistent/allowed_signers: "),
            "{error}"
        );
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().join("allowed_signers");
        std::fs::write(&path, format!("alice@example.com {ED25519}\n")).expect("write");
        let trust = Trust::load(Some(&path), None).expect("loads");
        assert_eq!(trust.ssh[0].origin, path.display().to_string());
    }

    #[test]
    fn ssh_times_are_utc_with_z() {
        assert_eq!(parse_ssh_time("20250601Z"), Ok(1_748_736_000));
        assert_eq!(parse_ssh_time("202506011200Z"), Ok(COMMIT_TIME));
        assert_eq!(parse_ssh_time("20250601120001z"), Ok(COMMIT_TIME + 1));
        assert!(parse_ssh_time("2025060").is_err());
        assert!(parse_ssh_time("20250631Z").is_err());
        assert!(parse_ssh_time("202506011260Z").is_err());
        assert!(parse_ssh_time("+2025060112").is_err());
    }

    #[test]
    fn namespace_patterns_follow_openssh() {
        let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(pattern_list_matches(&list(&["git"]), "git"));
        assert!(pattern_list_matches(&list(&["file", "g*"]), "git"));
        assert!(pattern_list_matches(&list(&["g?t"]), "git"));
        assert!(!pattern_list_matches(&list(&["file"]), "git"));
        assert!(!pattern_list_matches(&list(&["*", "!git"]), "git"));
        assert!(!pattern_list_matches(&list(&[]), "git"));
        assert!(!wildcard_match(b"*a*a*a*a*a*a*a*a*b", &[b'a'; 64]));
    }

    #[test]
    fn refusal_labels_are_stable() {
        let cases = [
            (Refusal::Unsigned, "unsigned"),
            (Refusal::UnknownKey { key: "k".into() }, "unknown key"),
            (
                Refusal::BadSignature { detail: "d".into() },
                "bad signature",
            ),
            (
                Refusal::ExpiredKey {
                    key: "k".into(),
                    detail: "d".into(),
                },
                "expired key",
            ),
            (
                Refusal::Unsupported { detail: "d".into() },
                "unsupported signature",
            ),
        ];
        for (refusal, label) in cases {
            assert_eq!(refusal.reason(), label);
            assert!(!refusal.to_string().contains('\n'));
        }
    }

    // -- hostile input ----------------------------------------------------

    fn refusal(verdict: Verdict) -> Refusal {
        match verdict {
            Verdict::Refused(refusal) => refusal,
            Verdict::Verified(signer) => panic!("unexpectedly verified: {signer:?}"),
        }
    }

    #[test]
    fn garbage_x509_and_oversized_signatures_are_refused() {
        let trust = parse(&format!("alice@example.com {ED25519}\n"));
        let check = |sig: &[u8]| refusal(verify(&trust, Some(sig), b"tree 0\n", COMMIT_TIME, NOW));
        assert_eq!(
            refusal(verify(&trust, None, b"x", COMMIT_TIME, NOW)),
            Refusal::Unsigned
        );
        assert_eq!(check(b"hello").reason(), "bad signature");
        assert_eq!(check(b" \n").reason(), "bad signature");
        assert_eq!(
            check(b"-----BEGIN SIGNED MESSAGE-----\nMIIB\n-----END SIGNED MESSAGE-----\n").reason(),
            "unsupported signature"
        );
        assert_eq!(
            check(b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n").reason(),
            "unsupported signature"
        );
        let mut big = b"-----BEGIN SSH SIGNATURE-----\n".to_vec();
        big.resize(MAX_SIGNATURE_BYTES + 1, b'A');
        let refused = check(&big);
        assert_eq!(refused.reason(), "bad signature");
        assert!(refused.to_string().contains("65536"), "{refused}");
        assert_eq!(
            check(b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n")
                .reason(),
            "bad signature"
        );
        assert_eq!(
            check(b"-----BEGIN PGP SIGNATURE-----\n\niHUEABYIAB0=\n-----END PGP SIGNATURE-----\n")
                .reason(),
            "bad signature"
        );
    }

    // -- fixtures made with the real tools ----------------------------------

    /// Runs a command that must succeed; a missing tool fails the test
    /// with a message saying what to install (CI installs them).
    fn run(command: &mut Command) -> Vec<u8> {
        let program = command.get_program().to_string_lossy().into_owned();
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("`{program}` is needed to build signature fixtures (install openssh-client, gnupg and git): {e}")
            });
        assert!(
            output.status.success(),
            "`{program} {:?}` failed: {}",
            command.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn run_text(command: &mut Command) -> String {
        String::from_utf8(run(command)).expect("UTF-8 output")
    }

    fn now() -> i64 {
        let elapsed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970");
        i64::try_from(elapsed.as_secs()).expect("seconds fit")
    }

    /// A fresh repository, isolated from the user's and the system's git
    /// configuration, whose commits all have committer time `COMMIT_TIME`.
    struct Repo {
        dir: TempDir,
        commits: std::cell::Cell<u32>,
    }

    impl Repo {
        fn new() -> Self {
            let repo = Self {
                dir: TempDir::new().expect("temp dir"),
                commits: std::cell::Cell::new(0),
            };
            std::fs::create_dir(repo.path()).expect("repo dir");
            run(repo.git().args(["init", "-q", "-b", "main"]));
            run(repo.git().args(["config", "user.name", "Meridian Test"]));
            run(repo
                .git()
                .args(["config", "user.email", "test@example.com"]));
            repo
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("repo")
        }

        fn home(&self) -> &Path {
            self.dir.path()
        }

        fn git(&self) -> Command {
            let mut command = Command::new("git");
            command
                .current_dir(self.path())
                .env("HOME", self.home())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_DATE", format!("@{COMMIT_TIME} +0000"))
                .env("GIT_COMMITTER_DATE", format!("@{COMMIT_TIME} +0000"))
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .env_remove("GIT_INDEX_FILE")
                .env_remove("GNUPGHOME");
            command
        }

        /// Commits a change with `config` (`-c key=value` pairs) and
        /// `commit_args`, and returns the new commit.
        fn commit(
            &self,
            config: &[String],
            commit_args: &[&str],
            gnupg: Option<&Path>,
        ) -> git2::Oid {
            let n = self.commits.get() + 1;
            self.commits.set(n);
            std::fs::write(self.path().join("weights.yaml"), format!("change: {n}\n"))
                .expect("write");
            run(self.git().args(["add", "weights.yaml"]));
            let mut command = self.git();
            for pair in config {
                command.args(["-c", pair]);
            }
            command.args(["commit", "-q", "-m", &format!("change {n}")]);
            command.args(commit_args);
            if let Some(home) = gnupg {
                command.env("GNUPGHOME", home);
            }
            run(&mut command);
            let head = run_text(self.git().args(["rev-parse", "HEAD"]));
            git2::Oid::from_str(head.trim()).expect("commit id")
        }

        fn open(&self) -> git2::Repository {
            git2::Repository::open(self.path()).expect("open the fixture repository")
        }

        /// The signature and signed data of `commit`.
        fn extract(&self, commit: git2::Oid) -> (Vec<u8>, Vec<u8>) {
            let (signature, data) = self
                .open()
                .extract_signature(&commit, None)
                .expect("the commit is signed");
            (signature.to_vec(), data.to_vec())
        }

        /// Writes a copy of `commit` whose message is changed, keeping
        /// its gpgsig header, and returns the forged commit.
        fn forge(&self, commit: git2::Oid) -> git2::Oid {
            let original = run_text(self.git().args(["cat-file", "commit", &commit.to_string()]));
            assert!(original.contains("gpgsig "), "{original}");
            let forged = original.replace("change ", "change (forged) ");
            let path = self.home().join("forged-commit");
            std::fs::write(&path, forged).expect("write");
            let oid = run_text(
                self.git()
                    .args(["hash-object", "-w", "-t", "commit"])
                    .arg(&path),
            );
            git2::Oid::from_str(oid.trim()).expect("commit id")
        }
    }

    /// An SSH key pair made by ssh-keygen: the private key's path and the
    /// public key line (`type base64`).
    fn ssh_key(dir: &Path, name: &str, kind: &[&str]) -> (PathBuf, String) {
        let private = dir.join(name);
        run(Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name])
            .args(kind)
            .arg("-f")
            .arg(&private));
        let public = std::fs::read_to_string(private.with_extension("pub")).expect("public key");
        let line = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        (private, line)
    }

    fn ssh_fingerprint(public_line: &str, dir: &Path) -> String {
        let path = dir.join("fingerprint.pub");
        std::fs::write(&path, format!("{public_line}\n")).expect("write");
        let out = run_text(
            Command::new("ssh-keygen")
                .args(["-l", "-E", "sha256", "-f"])
                .arg(&path),
        );
        out.split_whitespace()
            .nth(1)
            .expect("fingerprint field")
            .to_owned()
    }

    fn ssh_signing(private: &Path) -> Vec<String> {
        vec![
            "gpg.format=ssh".to_owned(),
            format!("user.signingkey={}", private.display()),
        ]
    }

    fn signed_ssh_commit(kind: &[&str]) -> (Repo, git2::Oid, String) {
        let repo = Repo::new();
        let (private, public) = ssh_key(repo.home(), "alice", kind);
        let commit = repo.commit(&ssh_signing(&private), &["-S"], None);
        (repo, commit, public)
    }

    fn verified(verdict: Verdict) -> Signer {
        match verdict {
            Verdict::Verified(signer) => signer,
            Verdict::Refused(refusal) => panic!("refused: {refusal} ({})", refusal.reason()),
        }
    }

    #[test]
    fn ssh_commit_signed_by_an_allowed_key_is_verified() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let trust = parse(&format!(
            "# team\nalice@example.com,ops@example.com {public}\n"
        ));
        let signer = verified(verify_commit(&trust, &repo.open(), commit, NOW));
        assert_eq!(signer.kind, SignatureKind::Ssh);
        assert_eq!(signer.principal, "alice@example.com,ops@example.com");
        assert_eq!(signer.fingerprint, ssh_fingerprint(&public, repo.home()));
        assert!(signer.fingerprint.starts_with("SHA256:"));
    }

    #[test]
    fn ssh_rsa_and_ecdsa_keys_are_verified() {
        for kind in [
            &["-t", "rsa", "-b", "2048"][..],
            &["-t", "ecdsa", "-b", "384"][..],
        ] {
            let (repo, commit, public) = signed_ssh_commit(kind);
            let (signature, _) = repo.extract(commit);
            if kind[1] == "rsa" {
                let sig = SshSig::from_pem(&signature).expect("SSHSIG");
                assert_eq!(sig.algorithm().as_str(), "rsa-sha2-512");
            }
            let trust = parse(&format!("alice@example.com {public}\n"));
            let signer = verified(verify_commit(&trust, &repo.open(), commit, NOW));
            assert_eq!(signer.principal, "alice@example.com", "{kind:?}");
        }
    }

    #[test]
    fn unsigned_commit_is_refused() {
        let repo = Repo::new();
        let commit = repo.commit(&[], &[], None);
        let trust = parse(&format!("alice@example.com {ED25519}\n"));
        let refused = refusal(verify_commit(&trust, &repo.open(), commit, NOW));
        assert_eq!(refused, Refusal::Unsigned);
        assert_eq!(refused.reason(), "unsigned");
    }

    #[test]
    fn ssh_commit_signed_by_a_key_not_in_allowed_signers_is_refused() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let trust = parse(&format!("bob@example.com {ED25519}\n"));
        let refused = refusal(verify_commit(&trust, &repo.open(), commit, NOW));
        assert_eq!(
            refused,
            Refusal::UnknownKey {
                key: ssh_fingerprint(&public, repo.home())
            }
        );
    }

    #[test]
    fn tampered_ssh_commit_is_refused() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let trust = parse(&format!("alice@example.com {public}\n"));

        let forged = repo.forge(commit);
        let refused = refusal(verify_commit(&trust, &repo.open(), forged, NOW));
        assert_eq!(refused.reason(), "bad signature", "{refused}");
        assert!(!refused.to_string().contains("forged"), "{refused}");

        let (signature, mut data) = repo.extract(commit);
        let last = data.len() - 2;
        data[last] ^= 1;
        let refused = refusal(verify(&trust, Some(&signature), &data, COMMIT_TIME, NOW));
        assert_eq!(refused.reason(), "bad signature", "{refused}");
    }

    #[test]
    fn ssh_signature_for_another_namespace_is_refused() {
        let repo = Repo::new();
        let (private, public) = ssh_key(repo.home(), "alice", &["-t", "ed25519"]);
        let data = repo.home().join("payload");
        std::fs::write(&data, b"tree 0000\n\nchange\n").expect("write");
        run(Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "file", "-f"])
            .arg(&private)
            .arg(&data));
        let signature = std::fs::read(data.with_extension("sig")).expect("signature");
        let trust = parse(&format!("alice@example.com {public}\n"));
        let refused = refusal(verify(
            &trust,
            Some(&signature),
            b"tree 0000\n\nchange\n",
            COMMIT_TIME,
            NOW,
        ));
        assert_eq!(refused.reason(), "bad signature", "{refused}");
        assert!(
            refused.to_string().contains("namespace `file`"),
            "{refused}"
        );
    }

    #[test]
    fn ssh_validity_window_is_checked_against_commit_time_and_now() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let repository = repo.open();
        let check = |options: &str, now: i64| {
            let trust = parse(&format!("# header\nalice@example.com {options} {public}\n"));
            verify_commit(&trust, &repository, commit, now)
        };

        let refused = refusal(check("valid-before=\"20250101\"", NOW));
        assert_eq!(refused.reason(), "expired key", "{refused}");
        assert!(
            refused.to_string().contains("allowed_signers:2"),
            "{refused}"
        );

        // Valid when committed, but the window closed before now.
        let refused = refusal(check(
            "valid-before=\"20250602Z\"",
            COMMIT_TIME + 10 * 86_400,
        ));
        assert_eq!(refused.reason(), "expired key", "{refused}");
        assert!(refused.to_string().contains("has passed"), "{refused}");

        let refused = refusal(check("valid-after=\"20250602Z\"", NOW));
        assert_eq!(refused.reason(), "expired key", "{refused}");

        let signer = verified(check(
            "valid-after=\"20250101Z\",valid-before=\"29991231Z\"",
            NOW,
        ));
        assert_eq!(signer.principal, "alice@example.com");
    }

    #[test]
    fn ssh_key_allowed_only_for_other_namespaces_is_refused() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let repository = repo.open();
        let check = |options: &str| {
            let trust = parse(&format!("alice@example.com {options} {public}\n"));
            verify_commit(&trust, &repository, commit, NOW)
        };
        assert_eq!(
            refusal(check("namespaces=\"file\"")).reason(),
            "unknown key"
        );
        assert_eq!(
            refusal(check("namespaces=\"*,!git\"")).reason(),
            "unknown key"
        );
        verified(check("namespaces=\"file,git\""));
        verified(check("namespaces=\"g*\""));
        // A second line for the same key that does allow git wins.
        let trust = parse(&format!(
            "files@example.com namespaces=\"file\" {public}\nalice@example.com namespaces=\"git\" {public}\n"
        ));
        let signer = verified(verify_commit(&trust, &repository, commit, NOW));
        assert_eq!(signer.principal, "alice@example.com");
    }

    #[test]
    fn mutated_ssh_signatures_never_panic_or_verify() {
        let (repo, commit, public) = signed_ssh_commit(&["-t", "ed25519"]);
        let trust = parse(&format!("alice@example.com {public}\n"));
        let (signature, data) = repo.extract(commit);
        verified(verify(&trust, Some(&signature), &data, COMMIT_TIME, NOW));
        // Only the canonical encoding is accepted, so every changed byte
        // (header, base64 body, padding bits, line breaks) is refused.
        for index in 0..signature.len() {
            let mut mutated = signature.clone();
            mutated[index] = if mutated[index] == b'A' { b'B' } else { b'A' };
            let verdict = verify(&trust, Some(&mutated), &data, COMMIT_TIME, NOW);
            assert!(!verdict.is_verified(), "mutation at {index} verified");
        }
        for cut in 0..signature.len() {
            assert!(
                !verify(&trust, Some(&signature[..cut]), &data, COMMIT_TIME, NOW).is_verified()
            );
        }
    }

    // -- OpenPGP ----------------------------------------------------------

    /// A GnuPG home in a temporary directory; its agent is stopped when
    /// the test ends.
    struct Gnupg {
        dir: TempDir,
    }

    impl Gnupg {
        fn new() -> Self {
            let dir = TempDir::new().expect("temp dir");
            let mut permissions = std::fs::metadata(dir.path())
                .expect("metadata")
                .permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
            std::fs::set_permissions(dir.path(), permissions).expect("chmod");
            Self { dir }
        }

        fn home(&self) -> &Path {
            self.dir.path()
        }

        fn gpg(&self) -> Command {
            let mut command = Command::new("gpg");
            command.arg("--homedir").arg(self.home()).args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ]);
            command
        }

        /// Generates a certificate and returns its fingerprint.
        fn generate(&self, user_id: &str, expiry: &str) -> String {
            run(self
                .gpg()
                .args(["--quick-gen-key", user_id, "ed25519", "sign", expiry]));
            self.fingerprints(user_id)[0].clone()
        }

        /// The fingerprints of a certificate: primary first, then subkeys.
        fn fingerprints(&self, user_id: &str) -> Vec<String> {
            let listing = run_text(self.gpg().args(["--with-colons", "--list-keys", user_id]));
            listing
                .lines()
                .filter(|line| line.starts_with("fpr:"))
                .map(|line| {
                    line.split(':')
                        .nth(9)
                        .expect("fingerprint field")
                        .to_owned()
                })
                .collect()
        }

        fn export(&self, user_id: &str, armor: bool) -> Vec<u8> {
            let mut command = self.gpg();
            if armor {
                command.arg("--armor");
            }
            run(command.args(["--export", user_id]))
        }

        fn signing(&self, key: &str) -> Vec<String> {
            vec![
                "gpg.format=openpgp".to_owned(),
                "gpg.program=gpg".to_owned(),
                format!("user.signingkey={key}"),
            ]
        }
    }

    impl Drop for Gnupg {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.dir.path())
                .args(["--kill", "all"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn signed_pgp_commit(expiry: &str) -> (Repo, Gnupg, git2::Oid, String) {
        let repo = Repo::new();
        let gnupg = Gnupg::new();
        let fingerprint = gnupg.generate("Alice <alice@example.com>", expiry);
        let commit = repo.commit(&gnupg.signing(&fingerprint), &["-S"], Some(gnupg.home()));
        (repo, gnupg, commit, fingerprint)
    }

    fn keyring(gnupg: &Gnupg, user_id: &str) -> Trust {
        Trust::from_openpgp_keyring(&gnupg.export(user_id, true), "keyring.asc")
            .expect("the keyring loads")
    }

    #[test]
    fn openpgp_commit_signed_by_a_keyring_certificate_is_verified() {
        let (repo, gnupg, commit, fingerprint) = signed_pgp_commit("1y");
        for armor in [true, false] {
            let trust =
                Trust::from_openpgp_keyring(&gnupg.export("alice@example.com", armor), "keyring")
                    .expect("the keyring loads");
            assert_eq!(trust.openpgp_certificate_count(), 1);
            let signer = verified(verify_commit(&trust, &repo.open(), commit, now()));
            assert_eq!(signer.kind, SignatureKind::OpenPgp);
            assert_eq!(signer.principal, "Alice <alice@example.com>");
            assert_eq!(signer.fingerprint, fingerprint);
        }
    }

    #[test]
    fn openpgp_commit_signed_by_a_signing_subkey_is_verified() {
        let repo = Repo::new();
        let gnupg = Gnupg::new();
        let primary = gnupg.generate("Alice <alice@example.com>", "1y");
        run(gnupg
            .gpg()
            .args(["--quick-add-key", &primary, "ed25519", "sign", "1y"]));
        let fingerprints = gnupg.fingerprints("alice@example.com");
        assert_eq!(fingerprints.len(), 2, "{fingerprints:?}");
        let commit = repo.commit(&gnupg.signing(&primary), &["-S"], Some(gnupg.home()));

        // gpg signs with the newest signing subkey.
        let (signature, _) = repo.extract(commit);
        let (parsed, _) = DetachedSignature::from_armor_single(&signature[..]).expect("armored");
        let issuers: Vec<String> = parsed
            .signature
            .issuer_fingerprint()
            .iter()
            .map(|f| hex_upper(f.as_bytes()))
            .collect();
        assert_eq!(issuers, [fingerprints[1].clone()]);

        let trust = keyring(&gnupg, "alice@example.com");
        let signer = verified(verify_commit(&trust, &repo.open(), commit, now()));
        assert_eq!(signer.fingerprint, primary);
    }

    #[test]
    fn openpgp_commit_signed_by_a_certificate_not_in_the_keyring_is_refused() {
        let (repo, gnupg, commit, fingerprint) = signed_pgp_commit("1y");
        gnupg.generate("Bob <bob@example.com>", "1y");
        let trust = keyring(&gnupg, "bob@example.com");
        let refused = refusal(verify_commit(&trust, &repo.open(), commit, now()));
        assert_eq!(refused, Refusal::UnknownKey { key: fingerprint });
    }

    #[test]
    fn tampered_openpgp_commit_is_refused() {
        let (repo, gnupg, commit, _) = signed_pgp_commit("1y");
        let trust = keyring(&gnupg, "alice@example.com");
        let forged = repo.forge(commit);
        let refused = refusal(verify_commit(&trust, &repo.open(), forged, now()));
        assert_eq!(refused.reason(), "bad signature", "{refused}");
        assert!(!refused.to_string().contains("forged"), "{refused}");

        let (signature, mut data) = repo.extract(commit);
        data[0] ^= 0x20;
        let refused = refusal(verify(&trust, Some(&signature), &data, COMMIT_TIME, now()));
        assert_eq!(refused.reason(), "bad signature", "{refused}");
    }

    #[test]
    fn openpgp_certificate_expired_at_now_is_refused() {
        let (repo, gnupg, commit, fingerprint) = signed_pgp_commit("1d");
        let trust = keyring(&gnupg, "alice@example.com");
        let repository = repo.open();
        verified(verify_commit(&trust, &repository, commit, now()));
        let refused = refusal(verify_commit(
            &trust,
            &repository,
            commit,
            now() + 2 * 86_400,
        ));
        match &refused {
            Refusal::ExpiredKey { key, detail } => {
                assert_eq!(key, &fingerprint);
                assert!(detail.contains("expired at"), "{detail}");
            }
            other => panic!("expected an expired key, got {other:?}"),
        }
    }

    #[test]
    fn openpgp_revoked_certificate_is_refused() {
        let (repo, gnupg, commit, fingerprint) = signed_pgp_commit("1y");
        let certificate = gnupg
            .home()
            .join("openpgp-revocs.d")
            .join(format!("{fingerprint}.rev"));
        // gpg guards its stored revocation with a leading colon.
        let revocation = std::fs::read_to_string(&certificate)
            .expect("gpg stored a revocation certificate")
            .replace(
                ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
                "-----BEGIN PGP PUBLIC KEY BLOCK-----",
            );
        std::fs::write(&certificate, revocation).expect("write");
        run(gnupg.gpg().arg("--import").arg(&certificate));
        let trust = keyring(&gnupg, "alice@example.com");
        let refused = refusal(verify_commit(&trust, &repo.open(), commit, now()));
        assert_eq!(refused.reason(), "expired key", "{refused}");
        assert!(refused.to_string().contains("revoked"), "{refused}");
    }

    #[test]
    fn openpgp_keyrings_hold_several_certificates_and_no_secrets() {
        let (repo, gnupg, commit, _) = signed_pgp_commit("1y");
        gnupg.generate("Bob <bob@example.com>", "1y");
        let mut both = gnupg.export("bob@example.com", true);
        both.extend(gnupg.export("alice@example.com", true));
        let trust = Trust::from_openpgp_keyring(&both, "team.asc").expect("loads");
        assert_eq!(trust.openpgp_certificate_count(), 2);
        verified(verify_commit(&trust, &repo.open(), commit, now()));

        let secret =
            run(gnupg
                .gpg()
                .args(["--armor", "--export-secret-keys", "alice@example.com"]));
        let error = Trust::from_openpgp_keyring(&secret, "secret.asc").expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("secret.asc: holds a `PGP PRIVATE KEY BLOCK`"),
            "{error}"
        );

        // A user id altered after signing breaks the only self-signature.
        let mut altered = gnupg.export("alice@example.com", false);
        let at = altered
            .windows(5)
            .position(|w| w == b"Alice")
            .expect("the user id is in the export");
        altered[at] = b'M';
        let error = Trust::from_openpgp_keyring(&altered, "altered.gpg").expect_err("refused");
        assert!(
            error.to_string().contains("has no valid self-signature"),
            "{error}"
        );

        let error = Trust::from_openpgp_keyring(b"", "empty.gpg").expect_err("refused");
        assert!(
            error.to_string().contains("holds no OpenPGP certificate"),
            "{error}"
        );

        // Both kinds of trust together: an SSH-only file does not hide the keyring.
        let dir = TempDir::new().expect("temp dir");
        let signers = dir.path().join("allowed_signers");
        let ring = dir.path().join("keyring.gpg");
        std::fs::write(&signers, format!("ops@example.com {ED25519}\n")).expect("write");
        std::fs::write(&ring, gnupg.export("alice@example.com", false)).expect("write");
        let trust = Trust::load(Some(&signers), Some(&ring)).expect("loads");
        verified(verify_commit(&trust, &repo.open(), commit, now()));
    }

    #[test]
    fn mutated_openpgp_signatures_never_panic() {
        let (repo, gnupg, commit, _) = signed_pgp_commit("1y");
        let trust = keyring(&gnupg, "alice@example.com");
        let (signature, data) = repo.extract(commit);
        let now = now();
        for index in 0..signature.len() {
            let mut mutated = signature.clone();
            mutated[index] = if mutated[index] == b'A' { b'/' } else { b'A' };
            let _ = verify(&trust, Some(&mutated), &data, COMMIT_TIME, now);
        }
        for cut in 0..signature.len() {
            assert!(
                !verify(&trust, Some(&signature[..cut]), &data, COMMIT_TIME, now).is_verified()
            );
        }
    }
}
