//! The secure-mode state machine of an administrator's change ([`plan`]) and the
//! reasons a certificate is revoked ([`RevokeReason`]).
//!
//! A backend reads the device's state, asks [`plan`] what to do, and carries the steps
//! out in order, in one transaction; the audit texts come from here, so that every backend
//! writes the same log.

use dls_engine::{AuditKind, BootstrapState, SecurityMode};

use super::check_sealed_pin;
use crate::StoreError;
use crate::model::SecurityUpdate;

/// Why a certificate was revoked, as stored beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevokeReason {
    /// A newer certificate was issued to the device.
    Superseded,
    /// An administrator reset the device.
    Reset,
    /// The device failed to bootstrap (e.g. too many wrong TANs).
    BootstrapFailed,
    /// The phone was reset to its factory state.
    FactoryReset,
}

impl RevokeReason {
    /// The stored text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Superseded => "superseded",
            Self::Reset => "reset",
            Self::BootstrapFailed => "bootstrap-failed",
            Self::FactoryReset => "factory-reset",
        }
    }
}

/// A device's security as [`plan`] needs it, before the change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecurityBefore {
    /// Its mode.
    pub mode: SecurityMode,
    /// Its bootstrap state.
    pub state: BootstrapState,
    /// Whether a PIN is outstanding.
    pub pin_outstanding: bool,
}

/// One step of a security change, carried out by the backend in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityStep<'a> {
    /// Forget the bootstrap material kept for the device: material issued before a reset,
    /// a mode change or a new PIN is never sent again (for `pin` it is sealed with the PIN
    /// it replaces).
    DropPending,
    /// Back to "not bootstrapped", TAN failures cleared (an outstanding PIN stays).
    Reset,
    /// Revoke the device's current certificate for this reason, with an audit record
    /// ([`AuditKind::CertificateRevoked`], [`revoked_detail`]) for each certificate
    /// revoked.
    RevokeCertificates(RevokeReason),
    /// Set the mode; with `wipe_pin` the outstanding PIN and its issue time are wiped.
    SetMode {
        /// The new mode.
        mode: SecurityMode,
        /// Whether the outstanding PIN goes.
        wipe_pin: bool,
    },
    /// Keep this sealed PIN as the outstanding one, issued at the change's time; the TAN
    /// failures are cleared and a failed device goes back to "not bootstrapped" (it may
    /// bootstrap again with the new PIN).
    IssuePin(&'a [u8]),
    /// Record this in the audit log, at the change's time.
    Audit(AuditKind, String),
}

/// The audit detail of a certificate revoked by an administrator's change.
#[must_use]
pub fn revoked_detail(serial: &str, reason: RevokeReason) -> String {
    format!("certificate {serial} revoked: {}", reason.as_str())
}

/// What an administrator's [`SecurityUpdate`] does to a device in state `before` (`None`:
/// the device is unknown), as steps: `reset` (which keeps an outstanding PIN), then `mode`
/// (only if it differs), then `new_pin`, each audited.
///
/// # Errors
/// [`StoreError::Invalid`] for a sealed PIN out of bounds, or a new PIN for a secured
/// device without `reset`; [`StoreError::NotFound`] for an unknown device. Both before
/// anything changes.
pub fn plan<'a>(
    device: &str,
    before: Option<SecurityBefore>,
    update: &'a SecurityUpdate,
) -> Result<Vec<SecurityStep<'a>>, StoreError> {
    if let Some(pin) = &update.new_pin {
        check_sealed_pin(pin)?;
    }
    let Some(before) = before else {
        return Err(StoreError::not_found(format_args!("device {device}")));
    };
    if update.new_pin.is_some() && before.state == BootstrapState::Secured && !update.reset {
        return Err(StoreError::Invalid("device is bootstrapped; reset it first".into()));
    }
    let mut steps = Vec::new();
    let new_mode = update.mode.filter(|m| *m != before.mode);
    if update.reset || update.new_pin.is_some() || new_mode.is_some() {
        steps.push(SecurityStep::DropPending);
    }
    if update.reset {
        steps.push(SecurityStep::Reset);
        steps.push(SecurityStep::Audit(
            AuditKind::DeviceReset,
            format!("reset to not-bootstrapped (was {})", before.state.as_str()),
        ));
        steps.push(SecurityStep::RevokeCertificates(RevokeReason::Reset));
    }
    let mut pin_outstanding = before.pin_outstanding;
    if let Some(mode) = new_mode {
        let wipe_pin = mode == SecurityMode::Default && pin_outstanding;
        steps.push(SecurityStep::SetMode { mode, wipe_pin });
        let mut detail = format!("from {} to {}", before.mode.as_str(), mode.as_str());
        if wipe_pin {
            detail.push_str("; outstanding PIN wiped");
            pin_outstanding = false;
        }
        steps.push(SecurityStep::Audit(AuditKind::ModeChanged, detail));
    }
    if let Some(pin) = &update.new_pin {
        steps.push(SecurityStep::IssuePin(pin));
        let detail = if pin_outstanding { "PIN issued, replacing the outstanding one" } else { "PIN issued" };
        steps.push(SecurityStep::Audit(AuditKind::PinIssued, detail.into()));
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use dls_engine::{AuditKind, BootstrapState, SecurityMode};

    use super::{RevokeReason, SecurityBefore, SecurityStep, plan};
    use crate::StoreError;
    use crate::model::SecurityUpdate;

    const PIN: &[u8] = b"sealed";

    fn before(mode: SecurityMode, state: BootstrapState, pin_outstanding: bool) -> Option<SecurityBefore> {
        Some(SecurityBefore { mode, state, pin_outstanding })
    }

    #[test]
    fn reset_mode_and_pin_in_order_with_their_audit_texts() {
        let update =
            SecurityUpdate { mode: Some(SecurityMode::Default), reset: true, new_pin: Some(PIN.to_vec()), actor: None };
        let steps = plan("D", before(SecurityMode::Pin, BootstrapState::Secured, true), &update).expect("plans");
        assert_eq!(
            steps,
            [
                SecurityStep::DropPending,
                SecurityStep::Reset,
                SecurityStep::Audit(AuditKind::DeviceReset, "reset to not-bootstrapped (was secured)".into()),
                SecurityStep::RevokeCertificates(RevokeReason::Reset),
                SecurityStep::SetMode { mode: SecurityMode::Default, wipe_pin: true },
                SecurityStep::Audit(AuditKind::ModeChanged, "from pin to default; outstanding PIN wiped".into()),
                SecurityStep::IssuePin(PIN),
                SecurityStep::Audit(AuditKind::PinIssued, "PIN issued".into()),
            ]
        );
    }

    #[test]
    fn the_same_mode_and_an_empty_update_do_nothing() {
        let same = SecurityUpdate { mode: Some(SecurityMode::Pin), ..SecurityUpdate::default() };
        let b = before(SecurityMode::Pin, BootstrapState::NotBootstrapped, true);
        assert_eq!(plan("D", b, &same).expect("plans"), []);
        assert_eq!(plan("D", b, &SecurityUpdate::default()).expect("plans"), []);
        let pin = SecurityUpdate { new_pin: Some(PIN.to_vec()), ..SecurityUpdate::default() };
        let steps = plan("D", b, &pin).expect("plans");
        assert_eq!(
            steps.last(),
            Some(&SecurityStep::Audit(AuditKind::PinIssued, "PIN issued, replacing the outstanding one".into()))
        );
    }

    #[test]
    fn refusals_come_before_any_step() {
        let pin = SecurityUpdate { new_pin: Some(PIN.to_vec()), ..SecurityUpdate::default() };
        let secured = before(SecurityMode::Pin, BootstrapState::Secured, false);
        assert!(matches!(plan("D", secured, &pin), Err(StoreError::Invalid(m)) if m.contains("reset it first")));
        assert!(matches!(plan("D", None, &pin), Err(StoreError::NotFound { what }) if what == "device D"));
        let empty = SecurityUpdate { new_pin: Some(Vec::new()), ..SecurityUpdate::default() };
        assert!(matches!(plan("D", None, &empty), Err(StoreError::Invalid(_))));
    }
}
