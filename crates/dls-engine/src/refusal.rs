//! Why the engine refused a message: each [`Refusal`] is mapped once to the short
//! `cleanup-reason` the phone is told and to the longer text the service logs.
//!
//! Refusals are sorted by who is at fault: the phone broke the protocol, the service's
//! policy does not take the device, or secure mode does not allow what was asked. The
//! `cleanup-reason` never carries a secret (no PIN, TAN, serial or value a phone sent),
//! only words the phone's administrator can act on.

use std::fmt;

/// A message the engine refused; the reply is a `CleanUp` with a `cleanup-reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    // --- the phone broke the protocol ---
    /// A `reply-to` arrived outside any interaction (no session, or the session expired).
    ReplyWithoutSession,
    /// A `reply-to` answered an action the DLS did not send.
    UnexpectedReply,
    /// A reason for contact the protocol does not define.
    UnknownReason,
    /// A reason for contact that cannot open an interaction here.
    UnexpectedReason,
    /// An interaction opened without a usable `mac-addr`.
    NoMacAddr,
    /// A `mac-addr` that differs from the interaction's device.
    MacDiffers,
    /// A nonce already used in an earlier interaction (a replay).
    NonceReplayed,
    /// A fragmented reply beyond the engine's item or byte limits.
    FragmentsOverLimits,
    // --- the service's policy ---
    /// The device is unknown and unknown devices are rejected.
    UnknownDeviceRejected,
    // --- secure mode ---
    /// The client certificate on the secure port names no device.
    CertificateWithoutDevice,
    /// The client certificate names another device than the message.
    CertificateMismatch,
    /// The device on the secure port is not known.
    UnknownDeviceOnSecurePort,
    /// The client certificate is not the device's current one (revoked or superseded).
    CertificateRevoked,
    /// The device is in secure mode and called the default-mode port.
    SecuredOnDefaultPort,
    /// Bootstrapping failed; the device waits for a new PIN.
    BootstrapFailed,
    /// The device is configured for secure mode with PIN, and no valid PIN is issued.
    NoValidPin,
    /// The phone sent a wrong TAN.
    WrongTan,
    /// Bootstrap issuance is at its bound (or its queue is full): try again later.
    BootstrapBusy,
    /// New bootstrap material was issued to this device too recently to issue more.
    ReissueTooSoon,
    /// The kept bootstrap material is not the device's current certificate.
    KeptBootstrapStale,
    // --- mobility (hot desking) ---
    /// A `sip-mobility-state` that is none of `0`, `1`, `2`.
    MobilityBadState,
    /// Too many wrong passwords for the user at this device lately: the password was not
    /// checked.
    MobilityThrottled,
    /// An unknown user or a wrong password (the phone is told the same for both).
    MobilityLogonRefused,
    /// A logoff whose password is wrong.
    MobilityLogoffRefused,
    /// A restore or a logoff from a device where no user is logged on.
    MobilityNoUserHere,
    /// `modified-items` naming something that is not a `userdata-*` item.
    MobilityBadModifiedItems,
    /// User data that is not Base64 or over the limits.
    MobilityBadUserData,
    /// The user is logged on at another phone: a forced logoff there is under way.
    MobilityLoggedOnElsewhere,
    /// Another message changed the user meanwhile (two phones at once): try again.
    MobilityBusy,
}

/// The `cleanup-reason` for a wrong TAN, as the protocol reference words it.
pub const WRONG_TAN: &str = "wrong TAN from device";

impl Refusal {
    /// The `cleanup-reason` item sent to the phone: short, stable, free of secrets.
    #[must_use]
    pub fn cleanup_reason(self) -> &'static str {
        match self {
            Self::ReplyWithoutSession => "no interaction in progress",
            Self::UnexpectedReply => "reply to an action not sent",
            Self::UnknownReason | Self::UnexpectedReason => "reason for contact not supported",
            Self::NoMacAddr => "mac-addr missing or invalid",
            Self::MacDiffers => "mac-addr differs from the interaction",
            Self::NonceReplayed => "nonce already used",
            Self::FragmentsOverLimits => "reply too large",
            Self::UnknownDeviceRejected => "device not registered",
            Self::CertificateWithoutDevice | Self::CertificateMismatch => "certificate does not match the device",
            Self::UnknownDeviceOnSecurePort => "device not registered",
            Self::CertificateRevoked => "certificate revoked",
            Self::SecuredOnDefaultPort => "device is in secure mode",
            Self::BootstrapFailed => "bootstrapping failed; a new PIN is required",
            Self::NoValidPin => "no valid PIN",
            Self::WrongTan => WRONG_TAN,
            Self::BootstrapBusy => "server busy; try again later",
            Self::ReissueTooSoon => "bootstrap issued recently; try again later",
            Self::KeptBootstrapStale => "bootstrap unavailable; try again later",
            Self::MobilityBadState => "mobility: bad sip-mobility-state",
            Self::MobilityThrottled => "mobility: too many attempts, try later",
            Self::MobilityLogonRefused => "mobility: logon refused",
            Self::MobilityLogoffRefused => "mobility: logoff refused",
            Self::MobilityNoUserHere => "mobility: no user logged on here",
            Self::MobilityBadModifiedItems => "mobility: bad modified-items",
            Self::MobilityBadUserData => "mobility: bad user data",
            Self::MobilityLoggedOnElsewhere => {
                "mobility: user logged on at another phone; logging off there, try again"
            }
            Self::MobilityBusy => "mobility: busy, try again",
        }
    }

    /// What the service logs: longer than the `cleanup-reason`, still free of secrets.
    #[must_use]
    pub fn why(self) -> &'static str {
        match self {
            Self::ReplyWithoutSession => "reply-to without a session",
            Self::UnexpectedReply => "reply-to for an action that was not asked",
            Self::UnknownReason => "unknown reason for contact",
            Self::UnexpectedReason => "unexpected reason",
            Self::NoMacAddr => "no mac-addr in a message that starts an interaction",
            Self::MacDiffers => "mac-addr differs from the session's device",
            Self::NonceReplayed => "nonce already used in an earlier interaction",
            Self::FragmentsOverLimits => "fragmented reply larger than the limits",
            Self::UnknownDeviceRejected => "unknown device, and the policy rejects unknown devices",
            Self::CertificateWithoutDevice => "client certificate does not name a device",
            Self::CertificateMismatch => "certificate names another device",
            Self::UnknownDeviceOnSecurePort => "unknown device on the secure port",
            Self::CertificateRevoked => "revoked or superseded certificate",
            Self::SecuredOnDefaultPort => "device is in secure mode; refused on the default port",
            Self::BootstrapFailed => "bootstrapping failed; waiting for a new PIN",
            Self::NoValidPin => "secure mode with PIN configured, but no valid PIN is outstanding",
            Self::WrongTan => "wrong TAN",
            Self::BootstrapBusy => "bootstrap issuance at its bound; try again later",
            Self::ReissueTooSoon => "new bootstrap material issued to this device too recently",
            Self::KeptBootstrapStale => "kept bootstrap material is not the device's current certificate",
            Self::MobilityBadState => "mobility: sip-mobility-state is not 0, 1 or 2",
            Self::MobilityThrottled => "mobility: too many wrong passwords lately; the password was not checked",
            Self::MobilityLogonRefused => "mobility: logon refused (unknown user or wrong password)",
            Self::MobilityLogoffRefused => "mobility: logoff refused (wrong password)",
            Self::MobilityNoUserHere => "mobility: no user is logged on at this device",
            Self::MobilityBadModifiedItems => "mobility: modified-items names an item that is not userdata-*",
            Self::MobilityBadUserData => "mobility: user data not Base64 or over the limits",
            Self::MobilityLoggedOnElsewhere => {
                "mobility: the user is logged on at another phone; a forced logoff is under way"
            }
            Self::MobilityBusy => "mobility: the user changed meanwhile (another phone); nothing committed",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.why())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_short_and_plain() {
        use Refusal::*;
        let all = [
            ReplyWithoutSession,
            UnexpectedReply,
            UnknownReason,
            UnexpectedReason,
            NoMacAddr,
            MacDiffers,
            NonceReplayed,
            FragmentsOverLimits,
            UnknownDeviceRejected,
            CertificateWithoutDevice,
            CertificateMismatch,
            UnknownDeviceOnSecurePort,
            CertificateRevoked,
            SecuredOnDefaultPort,
            BootstrapFailed,
            NoValidPin,
            WrongTan,
            BootstrapBusy,
            ReissueTooSoon,
            KeptBootstrapStale,
            MobilityBadState,
            MobilityThrottled,
            MobilityLogonRefused,
            MobilityLogoffRefused,
            MobilityNoUserHere,
            MobilityBadModifiedItems,
            MobilityBadUserData,
            MobilityLoggedOnElsewhere,
            MobilityBusy,
        ];
        for r in all {
            let text = r.cleanup_reason();
            // At most 80: the longest, the mobility logon elsewhere, is 71.
            assert!(!text.is_empty() && text.len() <= 80, "{r:?}: {text}");
            assert!(text.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{r:?}: {text}");
            assert!(!r.why().is_empty());
        }
    }
}
