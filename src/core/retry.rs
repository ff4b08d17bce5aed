//! The retry schedule for transient failures and the refresh schedule for a live session.

use std::time::Duration;

/// Delays before each retry of a login (or refresh) that failed for a transient reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before retry n (0-based); retries past the end reuse the last delay. The
    /// constructor's option check keeps it non-empty; an empty list means no delay.
    pub delays: Vec<Duration>,
    /// Transient failures tolerated before giving up: `max_retries` retries follow the first
    /// attempt.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            delays: [10_000, 30_000, 60_000, 300_000, 600_000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            max_retries: 5,
        }
    }
}

impl RetryPolicy {
    /// Returns the delay before the retry that follows `failures` transient failures
    /// (`failures >= 1`), never shorter than the wait the server asked for.
    pub fn delay_after(&self, failures: u32, server_wait: Option<Duration>) -> Duration {
        let index = (failures.saturating_sub(1) as usize).min(self.delays.len().saturating_sub(1));
        let scheduled = self.delays.get(index).copied().unwrap_or_default();

        match server_wait {
            Some(wait) if wait > scheduled => wait,
            _ => scheduled,
        }
    }

    /// Reports whether another retry is allowed after `failures` transient failures.
    pub fn allows_retry(&self, failures: u32) -> bool {
        failures <= self.max_retries
    }
}

/// Maximum margin kept between a proactive refresh and the access token's expiry.
const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Shortest gap between two proactive refreshes, so a token that is already expired (or a
/// clock far off from the PDS's) cannot make the agent refresh in a tight loop.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// Returns how long to wait before refreshing a session whose access token expires in
/// `expires_in` (`None` when the token carries no `exp`).
///
/// The refresh comes `refresh_interval` after the last one or a margin before expiry, whichever
/// is earlier. The margin is 5 minutes, or a quarter of the token's remaining life when that is
/// shorter, so short-lived tokens are refreshed before they expire too.
pub fn refresh_delay(refresh_interval: Duration, expires_in: Option<Duration>) -> Duration {
    let before_expiry = expires_in.map(|remaining| {
        let margin = MAX_REFRESH_MARGIN.min(remaining / 4);
        remaining - margin
    });

    let delay = match before_expiry {
        Some(before_expiry) => refresh_interval.min(before_expiry),
        None => refresh_interval,
    };
    delay.max(MIN_REFRESH_GAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn default_schedule_matches_original() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=5)
            .map(|failures| policy.delay_after(failures, None).as_millis() as u64)
            .collect();

        assert_eq!(delays, [10_000, 30_000, 60_000, 300_000, 600_000]);
        assert_eq!(policy.max_retries, 5);
    }

    #[test]
    fn delays_past_the_end_reuse_last() {
        let policy = RetryPolicy {
            delays: vec![Duration::from_millis(5), Duration::from_millis(7)],
            max_retries: 10,
        };

        assert_eq!(policy.delay_after(2, None), Duration::from_millis(7));
        assert_eq!(policy.delay_after(9, None), Duration::from_millis(7));
    }

    #[test]
    fn server_wait_extends_delay() {
        let policy = RetryPolicy::default();

        assert_eq!(policy.delay_after(1, Some(MINUTE)), MINUTE);
        assert_eq!(
            policy.delay_after(1, Some(Duration::from_secs(1))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retries_allowed_up_to_max() {
        let policy = RetryPolicy::default();

        assert!(policy.allows_retry(1));
        assert!(policy.allows_retry(5));
        assert!(!policy.allows_retry(6));
        assert!(!RetryPolicy {
            max_retries: 0,
            ..policy
        }
        .allows_retry(1));
    }

    #[test]
    fn refresh_uses_interval_for_long_tokens() {
        let delay = refresh_delay(30 * MINUTE, Some(120 * MINUTE));

        assert_eq!(delay, 30 * MINUTE);
    }

    #[test]
    fn refresh_comes_five_minutes_before_expiry() {
        let delay = refresh_delay(30 * MINUTE, Some(20 * MINUTE));

        assert_eq!(delay, 15 * MINUTE);
    }

    #[test]
    fn refresh_margin_shrinks_for_short_tokens() {
        let delay = refresh_delay(30 * MINUTE, Some(Duration::from_secs(8)));

        assert_eq!(delay, Duration::from_secs(6));
    }

    #[test]
    fn refresh_without_exp_uses_interval() {
        assert_eq!(refresh_delay(30 * MINUTE, None), 30 * MINUTE);
    }

    #[test]
    fn expired_token_refreshes_after_min_gap() {
        assert_eq!(
            refresh_delay(30 * MINUTE, Some(Duration::ZERO)),
            MIN_REFRESH_GAP
        );
        assert_eq!(
            refresh_delay(Duration::from_millis(10), None),
            MIN_REFRESH_GAP
        );
    }
}
