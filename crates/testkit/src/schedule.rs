//! A seeded fault schedule for fleet tests: which member to partition, kill
//! or bring back, when to restart Redis, and how long to let the load run in
//! between.
//!
//! # The rules
//!
//! - **Reproducible.** The steps are a function of the seed, the number of
//!   steps and the number of members alone (a splitmix64 generator, nothing
//!   read from the clock or the environment), and the schedule's `Display`
//!   is the call that rebuilds it: print it, and a failing run replays.
//! - **Someone is always up.** At every step at least one member is neither
//!   partitioned nor killed, so the fleet can always serve; a member has at
//!   most one fault at a time (partitioned *or* killed).
//! - **Everything heals.** By the last step every partitioned member is
//!   healed and every killed one restarted; a Redis restart is one step (stop
//!   and start), so it is never left open. A test that runs the whole
//!   schedule ends with the whole fleet up, and can then check its
//!   [`History`](crate::History) with every write given its chance to land.
//!
//! What a step *means* (a [`FaultProxy`](crate::FaultProxy) black hole for a
//! partition, `SIGKILL` for a kill, how long a [`Step::Pause`] lets the
//! clients run) is the test's to decide.

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

/// The environment variable [`FaultSchedule::seed_from_env`] reads.
///
/// ```
/// // FAULT_SEED=0xdeadbeef cargo test -p board --test fleet
/// assert_eq!(testkit::SEED_ENV, "FAULT_SEED");
/// ```
pub const SEED_ENV: &str = "FAULT_SEED";

/// Pauses are a whole number of these milliseconds, from 1 to `PAUSE_UNITS`
/// of them (10 to 200 ms).
const PAUSE_UNIT_MS: u64 = 10;
const PAUSE_UNITS: usize = 20;

/// One step of a [`FaultSchedule`]; members are numbered from 0.
///
/// ```
/// use std::time::Duration;
/// use testkit::Step;
///
/// assert_eq!(Step::Partition(1).to_string(), "partition member 1");
/// assert_eq!(Step::Pause(Duration::from_millis(30)).to_string(), "pause 30ms");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// Cut the member off the network (its clients and its Redis), keeping
    /// it running.
    Partition(usize),
    /// Reconnect a partitioned member.
    Heal(usize),
    /// Stop Redis and start it again (its data may or may not survive:
    /// the test's choice).
    RestartRedis,
    /// Kill the member with `SIGKILL`.
    KillMember(usize),
    /// Start a killed member again.
    RestartMember(usize),
    /// Let the clients run this long before the next step (10 to 200 ms).
    Pause(Duration),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition(m) => write!(f, "partition member {m}"),
            Self::Heal(m) => write!(f, "heal member {m}"),
            Self::RestartRedis => write!(f, "restart redis"),
            Self::KillMember(m) => write!(f, "kill member {m}"),
            Self::RestartMember(m) => write!(f, "restart member {m}"),
            Self::Pause(d) => write!(f, "pause {}ms", d.as_millis()),
        }
    }
}

/// A reproducible list of [`Step`]s for a fleet of `members` servers.
///
/// Every schedule keeps these rules:
///
/// - the steps are a function of the seed, the step count and the member
///   count alone, and `Display` prints the call that rebuilds them;
/// - after every step at least one member is neither partitioned nor
///   killed, and no member is both;
/// - after the last step every member is healed and running.
///
/// ```
/// use testkit::{FaultSchedule, Step};
///
/// let schedule = FaultSchedule::new(FaultSchedule::seed_from_env(42), 30, 3);
/// // In a failure message, this is the line that replays the run.
/// println!("{schedule}");
/// for step in &schedule {
///     match *step {
///         Step::Partition(m) => { /* proxies[m].black_hole() */ }
///         Step::Heal(m) => { /* proxies[m].pass_through() */ }
///         Step::RestartRedis => { /* redis.restart() */ }
///         Step::KillMember(m) => { /* fleet[m].kill() */ }
///         Step::RestartMember(m) => { /* fleet[m].start() */ }
///         Step::Pause(d) => { /* let the clients run for d */ }
///         _ => unreachable!("a step this test does not know"),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSchedule {
    seed: u64,
    members: usize,
    steps: Vec<Step>,
}

/// A member's state while the schedule is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Up,
    Partitioned,
    Killed,
}

impl FaultSchedule {
    /// Exactly `steps` steps for a fleet of `members` members, drawn from
    /// `seed`.
    ///
    /// ```
    /// use testkit::FaultSchedule;
    ///
    /// let schedule = FaultSchedule::new(7, 12, 3);
    /// assert_eq!(schedule.steps().len(), 12);
    /// assert_eq!(schedule, FaultSchedule::new(7, 12, 3));
    /// ```
    ///
    /// # Panics
    /// If `members` is 0: no one could stay up.
    #[must_use]
    pub fn new(seed: u64, steps: usize, members: usize) -> Self {
        assert!(members > 0, "a fault schedule needs at least one member");
        let mut rng = SplitMix64(seed);
        let mut health = vec![Health::Up; members];
        let mut drawn = Vec::with_capacity(steps);
        for index in 0..steps {
            let remaining = steps - index;
            let faulty: Vec<usize> = (0..members).filter(|&m| health[m] != Health::Up).collect();
            let up: Vec<usize> = (0..members).filter(|&m| health[m] == Health::Up).collect();
            // A new fault needs this step and one to undo it, on top of one
            // per fault already open; the last member up stays up.
            let may_break = up.len() > 1 && remaining > faulty.len() + 1;
            let must_mend = remaining <= faulty.len();
            let choice = if must_mend {
                Choice::Mend
            } else {
                let weights = [
                    (Choice::Break, if may_break { 3 } else { 0 }),
                    (Choice::Mend, if faulty.is_empty() { 0 } else { 3 }),
                    (Choice::Redis, 1),
                    (Choice::Pause, 2),
                ];
                rng.weighted(&weights)
            };
            let step = match choice {
                Choice::Break => {
                    let member = up[rng.below(up.len())];
                    if rng.below(2) == 0 {
                        health[member] = Health::Partitioned;
                        Step::Partition(member)
                    } else {
                        health[member] = Health::Killed;
                        Step::KillMember(member)
                    }
                }
                Choice::Mend => {
                    let member = faulty[rng.below(faulty.len())];
                    let step = match health[member] {
                        Health::Killed => Step::RestartMember(member),
                        Health::Partitioned | Health::Up => Step::Heal(member),
                    };
                    health[member] = Health::Up;
                    step
                }
                Choice::Redis => Step::RestartRedis,
                Choice::Pause => {
                    let units = 1 + rng.below(PAUSE_UNITS) as u64;
                    Step::Pause(Duration::from_millis(PAUSE_UNIT_MS * units))
                }
            };
            drawn.push(step);
        }
        Self {
            seed,
            members,
            steps: drawn,
        }
    }

    /// The seed in the environment variable `FAULT_SEED` (decimal, or hex
    /// with `0x`), else `default`: tests run a fixed schedule, and a failure
    /// seen elsewhere replays with `FAULT_SEED=… cargo test …`.
    ///
    /// ```
    /// // Unless FAULT_SEED is set for this run:
    /// # if std::env::var_os(testkit::SEED_ENV).is_none() {
    /// assert_eq!(testkit::FaultSchedule::seed_from_env(42), 42);
    /// # }
    /// ```
    ///
    /// # Panics
    /// If `FAULT_SEED` is set but not a `u64`.
    #[must_use]
    pub fn seed_from_env(default: u64) -> u64 {
        match std::env::var(SEED_ENV) {
            Ok(text) => parse_seed(&text)
                .unwrap_or_else(|| panic!("{SEED_ENV}={text:?} is not a u64 (decimal or 0x hex)")),
            Err(std::env::VarError::NotPresent) => default,
            Err(std::env::VarError::NotUnicode(text)) => {
                panic!("{SEED_ENV}={text:?} is not a u64 (decimal or 0x hex)")
            }
        }
    }

    /// The seed the steps were drawn from.
    ///
    /// ```
    /// assert_eq!(testkit::FaultSchedule::new(7, 4, 2).seed(), 7);
    /// ```
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The number of members in the fleet.
    ///
    /// ```
    /// assert_eq!(testkit::FaultSchedule::new(7, 4, 2).members(), 2);
    /// ```
    #[must_use]
    pub fn members(&self) -> usize {
        self.members
    }

    /// The steps, in order.
    ///
    /// ```
    /// use testkit::{FaultSchedule, Step};
    ///
    /// // A lone member is never partitioned or killed.
    /// let schedule = FaultSchedule::new(7, 20, 1);
    /// assert!(schedule.steps().iter().all(|s| matches!(s, Step::RestartRedis | Step::Pause(_))));
    /// ```
    #[must_use]
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// `{}` is the call that rebuilds the schedule; `{:#}` adds its steps, one
/// per line.
///
/// ```
/// let schedule = testkit::FaultSchedule::new(0xfeed, 3, 2);
/// assert_eq!(schedule.to_string(), "FaultSchedule::new(0xfeed, 3, 2)");
/// assert_eq!(format!("{schedule:#}").lines().count(), 4);
/// ```
impl fmt::Display for FaultSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FaultSchedule::new({:#x}, {}, {})",
            self.seed,
            self.steps.len(),
            self.members
        )?;
        if f.alternate() {
            for (index, step) in self.steps.iter().enumerate() {
                write!(f, "\n  {index:>3}: {step}")?;
            }
        }
        Ok(())
    }
}

/// Iterates over the steps.
///
/// ```
/// let schedule = testkit::FaultSchedule::new(1, 5, 2);
/// assert_eq!((&schedule).into_iter().count(), 5);
/// ```
impl<'a> IntoIterator for &'a FaultSchedule {
    type Item = &'a Step;
    type IntoIter = std::slice::Iter<'a, Step>;

    fn into_iter(self) -> Self::IntoIter {
        self.steps.iter()
    }
}

fn parse_seed(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[derive(Clone, Copy)]
enum Choice {
    Break,
    Mend,
    Redis,
    Pause,
}

/// Vigna's splitmix64: one `u64` of state, good enough to shuffle faults.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; `n` must be positive).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// One of the choices, with probability proportional to its weight.
    fn weighted<T: Copy>(&mut self, weights: &[(T, usize)]) -> T {
        let total: usize = weights.iter().map(|&(_, w)| w).sum();
        let mut pick = self.below(total);
        for &(choice, weight) in weights {
            if pick < weight {
                return choice;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }
}
