//! [`Role`]: what an account may do; [`Need`]: what a request needs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An account's role. Each role may do what the roles below it may, and more:
/// `viewer` < `operator` < `admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads everything but secrets: devices, inventories, profiles, jobs, files, the audit
    /// log, the settings.
    Viewer,
    /// Also manages devices, profiles, jobs, files and PINs.
    Operator,
    /// Also manages accounts, credentials (Digest secrets, fallback credentials, anything
    /// that shows a secret) and settings.
    Admin,
}

/// What a request needs of its caller's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Need {
    /// Reading what is not secret: any role.
    Read,
    /// Changing devices, profiles, jobs, files, PINs: `operator` or `admin`.
    Operate,
    /// Accounts, credentials, secrets, settings: `admin`.
    Administer,
}

impl Need {
    /// The least role that may do this.
    #[must_use]
    pub fn least_role(self) -> Role {
        match self {
            Self::Read => Role::Viewer,
            Self::Operate => Role::Operator,
            Self::Administer => Role::Admin,
        }
    }

    /// Its name, for messages (`read`, `operate`, `administer`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Operate => "operate",
            Self::Administer => "administer",
        }
    }
}

impl Role {
    /// Every role, from the least to the most.
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Operator, Self::Admin];

    /// Whether this role may do what `need` asks.
    #[must_use]
    pub fn may(self, need: Need) -> bool {
        self >= need.least_role()
    }

    /// Its name: `viewer`, `operator`, `admin` (as stored and shown).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of `viewer`, `operator`, `admin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (viewer, operator or admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::{Need, Role};

    #[test]
    fn each_role_may_what_those_below_it_may() {
        let table = [
            (Role::Viewer, [true, false, false]),
            (Role::Operator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, may) in table {
            let got = [Need::Read, Need::Operate, Need::Administer].map(|n| role.may(n));
            assert_eq!(got, may, "{role}");
        }
    }

    #[test]
    fn roles_have_one_name_each() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Admin".parse::<Role>().is_err(), "names are lower case");
        assert!("root".parse::<Role>().expect_err("unknown").to_string().contains("viewer, operator or admin"));
        assert_eq!("x".repeat(1000).parse::<Role>().expect_err("unknown").0.len(), 32, "the echo is bounded");
    }
}
