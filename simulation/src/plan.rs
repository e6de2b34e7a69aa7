//! The seeded generator and each round's fault plan: which outages and slow
//! links, when, and on which nodes.

use crate::config::Faults;

/// SplitMix64: a small, well-known seeded generator (no dependency).
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n.max(1) as u64)).unwrap_or(0)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A fault that takes nodes out (or makes one misbehave) for a window of
/// steps; at most one is active at a time and it takes at most f
/// validators, so the consortium keeps a quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outage {
    /// SIGKILL, restarted at the end (1 to f nodes).
    Kill(Vec<usize>),
    /// Cut off from the others (and each other), healed at the end (1 to f nodes).
    Cut(Vec<usize>),
    /// Its disk filled; freed and the node restarted at the end.
    FullDisk(usize),
    /// Restarted as a holder that alters the records it sends; restarted honest at the end.
    Tamper(usize),
}

/// A window of steps.
#[derive(Clone, Copy, Debug)]
pub struct Window<T> {
    /// First step.
    pub start: usize,
    /// The step at which it ends.
    pub end: usize,
    /// What.
    pub what: T,
}

/// One round's faults.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Outages, not overlapping.
    pub outages: Vec<Window<Outage>>,
    /// Slow links: (node, delay in ms).
    pub slow: Vec<Window<(usize, u64)>>,
}

/// The nodes faults may strike, by role.
pub struct Targets {
    /// Validators that are not hospitals (kill, cut, disk).
    pub others: Vec<usize>,
    /// The node with the small disk.
    pub disk: Option<usize>,
    /// The hospital that may turn tamperer.
    pub tamper: Option<usize>,
    /// Every node.
    pub all: usize,
    /// How many validators a kill or cut may take at once (f).
    pub fault_budget: usize,
}

/// 1 to `budget` distinct nodes of `from`. With a budget of one it draws
/// exactly what a single pick did, so four-validator seeds keep their runs.
fn pick_some(rng: &mut Rng, from: &[usize], budget: usize) -> Vec<usize> {
    let count = if budget <= 1 {
        1
    } else {
        1 + rng.below(budget.min(from.len()))
    };
    let mut pool = from.to_vec();
    let mut picked = Vec::with_capacity(count);
    for k in 0..count.min(pool.len()) {
        let j = k + rng.below(pool.len() - k);
        pool.swap(k, j);
        picked.push(pool[k]);
    }
    picked
}

/// Plans a round of `steps`: each enabled outage in its own slice of the
/// round, slow links anywhere.
pub fn plan(rng: &mut Rng, steps: usize, faults: &Faults, targets: &Targets) -> Plan {
    let mut outages: Vec<Outage> = Vec::new();
    let budget = targets.fault_budget;
    if faults.kill && !targets.others.is_empty() {
        outages.push(Outage::Kill(pick_some(rng, &targets.others, budget)));
    }
    if faults.partition && !targets.others.is_empty() {
        outages.push(Outage::Cut(pick_some(rng, &targets.others, budget)));
    }
    if let (true, Some(node)) = (faults.disk, targets.disk) {
        outages.push(Outage::FullDisk(node));
    }
    if let (true, Some(node)) = (faults.byzantine, targets.tamper) {
        outages.push(Outage::Tamper(node));
    }
    // Shuffle, then give each a slice of the round.
    for i in (1..outages.len()).rev() {
        outages.swap(i, rng.below(i + 1));
    }
    let mut plan = Plan::default();
    let slice = steps / outages.len().max(1);
    for (k, outage) in outages.into_iter().enumerate() {
        if slice < 3 {
            break;
        }
        let length = 2 + rng.below((slice - 2).min(4));
        let start = k * slice + rng.below(slice - length);
        plan.outages.push(Window {
            start,
            end: start + length,
            what: outage,
        });
    }
    if faults.slow && steps > 4 {
        let length = 3 + rng.below(6.min(steps - 3));
        let start = rng.below(steps - length.min(steps - 1));
        plan.slow.push(Window {
            start,
            end: start + length,
            what: (rng.below(targets.all), 50 + rng.below(250) as u64),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_never_overlap_and_stay_inside_the_round() {
        for (all, budget) in [(4, 1), (7, 2), (10, 3)] {
            let targets = Targets {
                others: (2..all).collect(),
                disk: Some(3),
                tamper: Some(1),
                all,
                fault_budget: budget,
            };
            for seed in 0..500 {
                check_plan(seed, &targets);
            }
        }
    }

    #[test]
    fn a_budget_of_one_draws_as_a_single_pick_did() {
        for seed in 0..100 {
            let (mut a, mut b) = (Rng(seed), Rng(seed));
            let from = [2, 3, 5];
            assert_eq!(pick_some(&mut a, &from, 1), vec![from[b.below(3)]]);
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    fn check_plan(seed: u64, targets: &Targets) {
        let mut rng = Rng(seed);
        let steps = 12 + rng.below(60);
        let plan = plan(&mut rng, steps, &Faults::ALL, targets);
        assert_eq!(plan.outages.len(), 4, "seed {seed}: {plan:?}");
        for outage in &plan.outages {
            if let Outage::Kill(nodes) | Outage::Cut(nodes) = &outage.what {
                let distinct: std::collections::BTreeSet<_> = nodes.iter().collect();
                assert!(
                    !nodes.is_empty()
                        && nodes.len() <= targets.fault_budget
                        && distinct.len() == nodes.len()
                        && nodes.iter().all(|n| targets.others.contains(n)),
                    "seed {seed}: {nodes:?}"
                );
            }
        }
        let mut windows: Vec<_> = plan.outages.iter().map(|w| (w.start, w.end)).collect();
        windows.sort_unstable();
        for pair in windows.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "seed {seed}: {windows:?}");
        }
        assert!(
            windows.iter().all(|(s, e)| s < e && *e < steps),
            "seed {seed}: {windows:?}"
        );
        assert!(plan.slow.iter().all(|w| w.start < w.end && w.start < steps));
    }
}
