//! Rate limits (sliding one-hour windows) on new orders and failed
//! validations, per account and per client IP, answered with `rateLimited`
//! and a `Retry-After` of when the oldest counted event leaves the window.
//!
//! Counts live in memory: a restart forgets them, which errs on the side of
//! letting clients through. The clock is the caller's (`now`).

use crate::problem::{Problem, ProblemType};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Length of every window (seconds).
pub const WINDOW_SECS: u64 = 3600;

/// Keys tracked before stale ones are swept.
const SWEEP_AT: usize = 100_000;

/// Events allowed per window; 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// New orders per account.
    pub new_orders_per_account: u32,
    /// New orders per client IP.
    pub new_orders_per_ip: u32,
    /// Failed validations per account.
    pub failed_validations_per_account: u32,
    /// Failed validations per client IP (the IP that asked for validation).
    pub failed_validations_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            new_orders_per_account: 300,
            new_orders_per_ip: 1000,
            failed_validations_per_account: 60,
            failed_validations_per_ip: 100,
        }
    }
}

/// What is being counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// newOrder.
    NewOrder,
    /// A validation that failed.
    FailedValidation,
}

/// Sliding-window counters.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: Limits,
    seen: Mutex<HashMap<(Event, String), VecDeque<u64>>>,
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, event: Event, per_ip: bool) -> u32 {
        match (event, per_ip) {
            (Event::NewOrder, false) => self.limits.new_orders_per_account,
            (Event::NewOrder, true) => self.limits.new_orders_per_ip,
            (Event::FailedValidation, false) => self.limits.failed_validations_per_account,
            (Event::FailedValidation, true) => self.limits.failed_validations_per_ip,
        }
    }

    /// The counted keys of an event (account, then IP), with their limits;
    /// unlimited ones are left out.
    fn keys(&self, event: Event, account: &str, ip: Option<&str>) -> Vec<(String, usize, bool)> {
        [(account, false)]
            .into_iter()
            .chain(ip.map(|ip| (ip, true)))
            .filter_map(|(key, per_ip)| {
                let limit = self.limit(event, per_ip) as usize;
                let name = format!("{}:{key}", if per_ip { "ip" } else { "acct" });
                (limit > 0).then_some((name, limit, per_ip))
            })
            .collect()
    }

    /// Refuses with `rateLimited` if the account or the IP is at its limit
    /// for `event` at `now`.
    pub fn check(
        &self,
        event: Event,
        account: &str,
        ip: Option<&str>,
        now: u64,
    ) -> Result<(), Problem> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (name, limit, per_ip) in self.keys(event, account, ip) {
            if let Some(times) = seen.get_mut(&(event, name)) {
                while times.front().is_some_and(|t| t + WINDOW_SECS <= now) {
                    times.pop_front();
                }
                if times.len() >= limit {
                    let retry = times.front().map_or(WINDOW_SECS, |t| t + WINDOW_SECS - now);
                    let what = match event {
                        Event::NewOrder => "new orders",
                        Event::FailedValidation => "failed validations",
                    };
                    let whose = if per_ip {
                        "this IP address"
                    } else {
                        "this account"
                    };
                    let mut p = Problem::new(
                        ProblemType::RateLimited,
                        format!("{limit} {what} per hour for {whose}; retry in {retry} s"),
                    );
                    p.retry_after = Some(retry.max(1));
                    return Err(p);
                }
            }
        }
        Ok(())
    }

    /// Counts one `event` for the account and IP at `now`.
    pub fn record(&self, event: Event, account: &str, ip: Option<&str>, now: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > SWEEP_AT {
            seen.retain(|_, times| times.back().is_some_and(|t| t + WINDOW_SECS > now));
        }
        for (name, limit, _) in self.keys(event, account, ip) {
            let times = seen.entry((event, name)).or_default();
            times.push_back(now);
            while times.len() > limit {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_key_and_slide() {
        let l = Limiter::new(Limits {
            new_orders_per_account: 2,
            new_orders_per_ip: 3,
            failed_validations_per_account: 0,
            failed_validations_per_ip: 0,
        });
        for t in [0, 10] {
            l.check(Event::NewOrder, "a", Some("ip1"), t).unwrap();
            l.record(Event::NewOrder, "a", Some("ip1"), t);
        }
        let p = l.check(Event::NewOrder, "a", Some("ip1"), 20).unwrap_err();
        assert_eq!(p.kind, ProblemType::RateLimited);
        assert_eq!(p.retry_after, Some(3580));
        // Another account from the same IP: one more, then the IP limit.
        l.check(Event::NewOrder, "b", Some("ip1"), 20).unwrap();
        l.record(Event::NewOrder, "b", Some("ip1"), 20);
        assert!(l.check(Event::NewOrder, "c", Some("ip1"), 30).is_err());
        assert!(l.check(Event::NewOrder, "c", Some("ip2"), 30).is_ok());
        // The window slides.
        assert!(l.check(Event::NewOrder, "a", None, 3600).is_ok());
        // Unlimited events are never refused.
        for t in 0..100 {
            l.record(Event::FailedValidation, "a", None, t);
        }
        assert!(l.check(Event::FailedValidation, "a", None, 100).is_ok());
    }
}

/// Validations an account may have under way at once.
pub const MAX_VALIDATIONS_PER_ACCOUNT: u32 = 8;
/// Validations under way at once, all accounts together.
pub const MAX_VALIDATIONS: u32 = 1024;

/// Bounds the validations under way (queued or running), per account and
/// in all, so that one account cannot fill the queue and nobody can grow
/// it without end. Memory holds one entry per account with a validation
/// under way, so at most [`MAX_VALIDATIONS`] entries.
#[derive(Debug, Default)]
pub struct InFlight {
    state: Mutex<(u32, HashMap<String, u32>)>,
}

impl InFlight {
    /// Takes a slot for `account`, or says why not (`rateLimited`).
    pub fn reserve(&self, account: &str) -> Result<(), Problem> {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per) = &mut *g;
        let mine = per.get(account).copied().unwrap_or(0);
        if mine >= MAX_VALIDATIONS_PER_ACCOUNT {
            let mut p = Problem::new(
                ProblemType::RateLimited,
                format!("{mine} validations of this account are under way; answer another challenge when one of them is done"),
            );
            p.retry_after = Some(5);
            return Err(p);
        }
        if *total >= MAX_VALIDATIONS {
            let mut p = Problem::new(
                ProblemType::RateLimited,
                "the server has too many validations under way; try again shortly",
            );
            p.retry_after = Some(5);
            return Err(p);
        }
        *total += 1;
        per.insert(account.to_string(), mine + 1);
        Ok(())
    }

    /// Takes a slot whatever the bounds (validations resumed at start).
    pub fn force(&self, account: &str) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        *g.1.entry(account.to_string()).or_insert(0) += 1;
    }

    /// Gives `account`'s slot back.
    pub fn release(&self, account: &str) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per) = &mut *g;
        if let Some(n) = per.get_mut(account) {
            *n -= 1;
            *total = total.saturating_sub(1);
            if *n == 0 {
                per.remove(account);
            }
        }
    }
}

#[cfg(test)]
mod in_flight_tests {
    use super::*;

    #[test]
    fn one_account_cannot_take_every_slot() {
        let f = InFlight::default();
        for _ in 0..MAX_VALIDATIONS_PER_ACCOUNT {
            f.reserve("a").unwrap();
        }
        let p = f.reserve("a").unwrap_err();
        assert_eq!(p.kind, ProblemType::RateLimited);
        f.reserve("b").unwrap();
        f.release("a");
        f.reserve("a").unwrap();
        for _ in 0..=MAX_VALIDATIONS_PER_ACCOUNT {
            f.release("a");
        }
        assert_eq!(f.state.lock().unwrap().1.len(), 1, "a's entry is gone");
    }
}
