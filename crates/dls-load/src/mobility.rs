//! The mobility mix of a load run ([`MobilityMix`]): a share of the phones log a user on
//! after their `start-up`, change the user's phone book and log the user off, each round.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dls_workpoint::{Interaction, MobilityError, Phone, UserPassword, WpiClient};

/// The item of the user's data each mobile phone changes before the logoff.
pub const MOBILITY_USERDATA_ITEM: &str = "userdata-phonebook";

/// The failure kind of a logon whose restored phone book is not the one this run saved at the
/// user's last logoff.
pub const RESTORE_MISMATCH: &str = "restore-mismatch";

/// Which phones log a user on and off, as whom, and what they change.
///
/// Phone `i` is a mobile phone when `⌊(i+1)·s/100⌋ > ⌊i·s/100⌋` (`s` the share): the mobile
/// phones are spread evenly, `⌊N·s/100⌋` of `N`. The `k`-th mobile phone (`k = ⌊i·s/100⌋`)
/// logs on user [`first_user`](Self::first_user) + `k`: one user per phone, so no user is
/// logged on at two phones at once. Those users must exist on the DLS with
/// [`password`](Self::password).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MobilityMix {
    /// The share of phones that log a user on and off, in percent (1 to 100).
    pub share_percent: u8,
    /// The first user's number (digits, a leading `+` kept).
    pub first_user: String,
    /// Every user's password.
    pub password: UserPassword,
    /// The size of the phone book each mobile phone writes before the logoff (bytes).
    pub userdata_bytes: usize,
}

impl MobilityMix {
    /// `share_percent` of the phones, users from `first_user`, a 4 KiB phone book.
    ///
    /// # Errors
    /// A sentence when the share is not 1 to 100 or the number is not digits (with an
    /// optional leading `+`) that can be counted up.
    pub fn new(share_percent: u8, first_user: &str, password: UserPassword) -> Result<Self, String> {
        if !(1..=100).contains(&share_percent) {
            return Err(format!("the mobility share is 1 to 100 percent, not {share_percent}"));
        }
        let digits = first_user.strip_prefix('+').unwrap_or(first_user);
        if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{first_user:?} is not a user number (digits, a leading + allowed)"));
        }
        Ok(Self { share_percent, first_user: first_user.to_owned(), password, userdata_bytes: 4096 })
    }

    /// Whether phone `index` is a mobile phone; if so, the index of its user (from 0).
    #[must_use]
    pub fn user_index(&self, index: usize) -> Option<usize> {
        let s = usize::from(self.share_percent);
        let before = index.saturating_mul(s) / 100;
        (index.saturating_add(1).saturating_mul(s) / 100 > before).then_some(before)
    }

    /// How many users a fleet of `phones` needs.
    #[must_use]
    pub fn users_needed(&self, phones: usize) -> usize {
        phones.saturating_mul(usize::from(self.share_percent)) / 100
    }

    /// The number of user `k`: [`first_user`](Self::first_user) + `k`, as many digits.
    #[must_use]
    pub fn user(&self, k: usize) -> String {
        let (plus, digits) = match self.first_user.strip_prefix('+') {
            Some(d) => ("+", d),
            None => ("", self.first_user.as_str()),
        };
        let n = digits.parse::<u64>().unwrap_or(0).saturating_add(u64::try_from(k).unwrap_or(u64::MAX));
        format!("{plus}{n:0width$}", width = digits.len())
    }
}

/// The phone book written with `seed`: `len` bytes that differ from one seed to the next.
#[must_use]
pub fn phone_book(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// What this run saved per user, to check each restore against.
#[derive(Debug)]
pub(crate) struct Saved {
    /// Per user, the seed of the phone book saved at their last logoff in this run.
    seeds: Vec<Mutex<Option<u32>>>,
    next_seed: AtomicU32,
}

impl Saved {
    pub(crate) fn new(users: usize) -> Self {
        Self { seeds: (0..users).map(|_| Mutex::new(None)).collect(), next_seed: AtomicU32::new(1) }
    }
}

/// What one logon and logoff took.
#[derive(Debug, Default)]
pub(crate) struct Round {
    pub(crate) logon: Option<Duration>,
    pub(crate) logoff: Option<Duration>,
    /// Every interaction of the round, in order (for what was written and the exchanges).
    pub(crate) interactions: Vec<Interaction>,
}

/// The logon of user `k` at `phone`, the phone book checked and changed, the logoff.
pub(crate) async fn round(
    mix: &MobilityMix,
    saved: &Saved,
    phone: &mut Phone,
    client: &mut WpiClient,
    k: usize,
) -> Result<Round, String> {
    let mut out = Round::default();
    let began = Instant::now();
    let logon = phone.log_on(client, &mix.user(k), &mix.password).await.map_err(|e| e.kind())?;
    out.logon = Some(began.elapsed());
    out.interactions.extend([logon.logon, logon.start_up, logon.restore]);
    let slot = saved.seeds.get(k);
    let expected = slot.and_then(|s| s.lock().ok().and_then(|s| *s));
    if let Some(seed) = expected {
        let restored = phone.userdata().into_iter().find(|d| d.name == MOBILITY_USERDATA_ITEM);
        if restored.and_then(|d| d.bytes().ok()) != Some(phone_book(seed, mix.userdata_bytes)) {
            return Err(RESTORE_MISMATCH.to_owned());
        }
    }
    let seed = saved.next_seed.fetch_add(1, Ordering::Relaxed);
    phone
        .set_userdata(MOBILITY_USERDATA_ITEM, &phone_book(seed, mix.userdata_bytes))
        .map_err(|e: MobilityError| e.kind())?;
    let began = Instant::now();
    let logoff = phone.log_off(client, Some(&mix.password)).await.map_err(|e| e.kind())?;
    out.logoff = Some(began.elapsed());
    if logoff.saved.iter().any(|n| n == MOBILITY_USERDATA_ITEM)
        && let Some(Ok(mut s)) = slot.map(Mutex::lock)
    {
        *s = Some(seed);
    }
    out.interactions.extend([logoff.logoff, logoff.start_up]);
    Ok(out)
}
