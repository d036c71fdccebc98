//! Secure mode: the device's security state as the engine sees it, the channel a message
//! came in on, the bootstrap material the shell prepares, and audit events.
//!
//! The engine never generates keys, certificates or PINs and never runs PBKDF2: the shell
//! asks [`crate::Engine::bootstrap_needed`] before it calls [`crate::Engine::handle`], prepares
//! the material off the executor, and passes it in [`crate::Input::bootstrap`].

use std::fmt;

use dls_message::{Item, MacAddr};

use crate::device::UnixTime;

/// How a device is to be managed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityMode {
    /// Default mode only: no server authentication, no client certificate.
    #[default]
    Default,
    /// Secure mode, bootstrapped without PIN (the client key travels in default-mode TLS).
    Nopin,
    /// Secure mode, bootstrapped with a PIN (the bundle is sealed with the PIN's key part;
    /// the TAN is checked on the secure port).
    Pin,
}

impl SecurityMode {
    /// The word used on the wire (`goto-secure-mode`) and in the CLI.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Nopin => "nopin",
            Self::Pin => "pin",
        }
    }
}

impl std::str::FromStr for SecurityMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(Self::Default),
            "nopin" => Ok(Self::Nopin),
            "pin" => Ok(Self::Pin),
            other => Err(format!("unknown security mode {other:?} (default, nopin, pin)")),
        }
    }
}

/// Where a device stands in bootstrapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootstrapState {
    /// Not (yet) in secure mode.
    #[default]
    NotBootstrapped,
    /// Bootstrapped: the device uses the secure port with its client certificate.
    Secured,
    /// Bootstrapping failed (PIN retries at the phone, or too many wrong TANs): a new PIN
    /// is required.
    Failed,
}

impl BootstrapState {
    /// The state's name: `not-bootstrapped`, `secured`, `failed` (as serialized).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotBootstrapped => "not-bootstrapped",
            Self::Secured => "secured",
            Self::Failed => "failed",
        }
    }
}

/// What the engine knows of a device's security.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// The mode an administrator chose.
    pub mode: SecurityMode,
    /// Where bootstrapping stands.
    pub state: BootstrapState,
    /// Whether a PIN is outstanding. The PIN itself (and so its TAN) is kept sealed by the
    /// shell; the engine is given the TAN only to check it ([`crate::Engine::tan_needed`],
    /// [`crate::Input::tan`]).
    pub pin_outstanding: bool,
    /// When the outstanding PIN was issued.
    pub pin_issued_at: Option<UnixTime>,
    /// Wrong TANs since the PIN was issued.
    pub tan_failures: u32,
    /// The serial number (hex) of the device's current, unrevoked certificate.
    pub certificate: Option<String>,
    /// The bootstrap material last issued to the device and kept (sealed by the shell) for
    /// the start-ups that follow, while the device has not finished bootstrapping.
    pub pending: Option<PendingBootstrap>,
}

/// Bootstrap material that was issued and is kept, so that a repeated start-up gets the
/// same certificate (and for `pin` the same sealed bundle) instead of a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingBootstrap {
    /// The serial number of the certificate in it.
    pub serial: String,
    /// When it was issued.
    pub issued_at: UnixTime,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("mode", &self.mode)
            .field("state", &self.state)
            .field("pin_outstanding", &self.pin_outstanding)
            .field("pin_issued_at", &self.pin_issued_at)
            .field("tan_failures", &self.tan_failures)
            .field("certificate", &self.certificate)
            .field("pending", &self.pending)
            .finish()
    }
}

/// The connection a message came in on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Channel {
    /// The default-mode port: TLS without client authentication.
    #[default]
    Default,
    /// The secure port: mutual TLS; the client certificate chained to the device CA.
    Secure {
        /// The certificate's subject CN as a MAC, if it is one.
        certificate_mac: Option<MacAddr>,
        /// The certificate's serial number (hex, upper case).
        certificate_serial: String,
    },
}

/// Which bootstrap the shell must prepare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapKind {
    /// Certificate, key, CAs and port in the clear (`goto-secure-mode` = `nopin`).
    Nopin,
    /// The same, sealed with the PIN into `secure-mode-data` (`goto-secure-mode` = `pin`).
    Pin,
}

/// What the shell must do to answer a default-port start-up with bootstrap material, as
/// [`crate::Engine::bootstrap_needed`] decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapNeed {
    /// Issue new material (a certificate and key; for `pin` sealed with the PIN): the costly
    /// path, which the shell bounds.
    Issue(BootstrapKind),
    /// Send again the material kept for the device ([`Security::pending`]): no new
    /// certificate, nothing revoked, no key generation or PBKDF2.
    Reuse(BootstrapKind),
}

impl BootstrapNeed {
    /// Which bootstrap.
    #[must_use]
    pub fn kind(self) -> BootstrapKind {
        match self {
            Self::Issue(k) | Self::Reuse(k) => k,
        }
    }
}

/// Bootstrap material sealed by the shell for keeping at rest: opaque to the engine and the
/// store (it holds a private key; only the shell's key opens it).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBootstrap(pub Vec<u8>);

impl fmt::Debug for SealedBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedBootstrap({} bytes)", self.0.len())
    }
}

/// What the shell supplies for a start-up that [`crate::Engine::bootstrap_needed`] asked
/// material for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootstrapSupply {
    /// Newly issued material, and the same sealed for keeping.
    Issued {
        /// What to send.
        bootstrap: Bootstrap,
        /// The material sealed by the shell, kept for the start-ups that follow.
        sealed: SealedBootstrap,
    },
    /// The material kept for the device, opened again.
    Reused(Bootstrap),
    /// None now: the bound on concurrent issuance is reached. The phone gets a `CleanUp`.
    Unavailable,
}

/// A client certificate issued for a bootstrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Serial number, hex upper case.
    pub serial: String,
    /// Expiry.
    pub not_after: UnixTime,
}

/// The bootstrap `WriteItems` the shell prepared: the items, and the certificate in them.
#[derive(Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// The items to send (`goto-secure-mode`, …). They hold key material: never log them.
    pub items: Vec<Item>,
    /// The certificate they carry.
    pub certificate: IssuedCertificate,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap").field("items", &self.items.len()).field("certificate", &self.certificate).finish()
    }
}

/// A security event, kept in the audit log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuditKind {
    /// A PIN was issued (by an administrator).
    PinIssued,
    /// The device's security mode was changed.
    ModeChanged,
    /// The device was reset to "not bootstrapped".
    DeviceReset,
    /// A client certificate was issued.
    CertificateIssued,
    /// A client certificate was revoked.
    CertificateRevoked,
    /// The bootstrap `WriteItems` was sent.
    BootstrapSent,
    /// The device completed bootstrapping.
    Bootstrapped,
    /// The device sent the right TAN.
    TanRight,
    /// The device sent a wrong TAN.
    TanWrong,
    /// Bootstrapping failed (PIN retries at the phone, or the TAN limit).
    BootstrapFailed,
    /// A bootstrapped device was refused on the default-mode port.
    DefaultPortRefused,
    /// A client certificate presented for another device's MAC.
    CertificateMismatch,
    /// A client certificate that is not the device's current one (revoked or superseded).
    CertificateRefused,
    /// A device in secure mode has no usable PIN (none issued, or expired).
    PinUnavailable,
    /// A mobility user logged on at the device.
    MobilityLogon,
    /// A mobility user logged off the device (or was found logged off by the phone's report).
    MobilityLogoff,
    /// A mobility request was refused (the detail says why: unknown user, wrong password,
    /// throttled, bad data, …).
    MobilityRefused,
    /// A mobility user was logged off a device without the phone (a logon elsewhere after
    /// the grace), or a forced logoff was asked for.
    MobilityForcedLogoff,
}

impl AuditKind {
    /// Every kind, in the order above.
    pub const ALL: [Self; 18] = [
        Self::PinIssued,
        Self::ModeChanged,
        Self::DeviceReset,
        Self::CertificateIssued,
        Self::CertificateRevoked,
        Self::BootstrapSent,
        Self::Bootstrapped,
        Self::TanRight,
        Self::TanWrong,
        Self::BootstrapFailed,
        Self::DefaultPortRefused,
        Self::CertificateMismatch,
        Self::CertificateRefused,
        Self::PinUnavailable,
        Self::MobilityLogon,
        Self::MobilityLogoff,
        Self::MobilityRefused,
        Self::MobilityForcedLogoff,
    ];

    /// The kebab-case name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PinIssued => "pin-issued",
            Self::ModeChanged => "mode-changed",
            Self::DeviceReset => "device-reset",
            Self::CertificateIssued => "certificate-issued",
            Self::CertificateRevoked => "certificate-revoked",
            Self::BootstrapSent => "bootstrap-sent",
            Self::Bootstrapped => "bootstrapped",
            Self::TanRight => "tan-right",
            Self::TanWrong => "tan-wrong",
            Self::BootstrapFailed => "bootstrap-failed",
            Self::DefaultPortRefused => "default-port-refused",
            Self::CertificateMismatch => "certificate-mismatch",
            Self::CertificateRefused => "certificate-refused",
            Self::PinUnavailable => "pin-unavailable",
            Self::MobilityLogon => "mobility-logon",
            Self::MobilityLogoff => "mobility-logoff",
            Self::MobilityRefused => "mobility-refused",
            Self::MobilityForcedLogoff => "mobility-forced-logoff",
        }
    }
}

/// One audit record. `detail` never holds secrets.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: UnixTime,
    /// What.
    pub kind: AuditKind,
    /// A one-line explanation (serial numbers, counts; never PINs, TANs or keys).
    pub detail: String,
}
