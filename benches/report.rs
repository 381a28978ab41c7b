//! The interleaved comparison behind BENCHMARKS.md.
//!
//! Each round runs every case in turn, each on its own 2-worker runtime,
//! and within a case every variant once (in the order of a Williams
//! design, `support/order.rs`, so that every variant follows every other
//! equally often), so the baseline and taskward see the same machine at
//! the same moment, and every case's rounds are spread over the whole run. A
//! variant's ratio is the median over the rounds of its time divided by
//! the baseline's time of the same round. Each target's verdict comes with
//! a 90% interval of that median: where it reaches across the target, the
//! verdict is within the noise of the machine.
//!
//! ```sh
//! # print the table
//! cargo bench -p taskward-benches --bench report
//! # regenerate BENCHMARKS.md
//! cargo bench -p taskward-benches --bench report --bench memory -- --write
//! # profile one case
//! cargo bench -p taskward-benches --bench report -- --filter spawn_join/10000/taskward-fn --rounds 1
//! # every sample, for a distribution or a resampling of the rounds
//! cargo bench -p taskward-benches --bench report -- --filter nested_tree --samples nested.csv
//! ```

#[path = "support/cases.rs"]
mod cases;
#[path = "support/order.rs"]
mod order;
#[path = "support/section.rs"]
mod section;
#[path = "support/tasks.rs"]
mod tasks;

use std::fmt::Write as _;
use std::time::Duration;

use cases::{Case, cases, runtime, worker_threads};
use section::{Args, write_section};

/// Rounds when none are asked for: odd, so the median is one of them. With
/// 25, two runs of one build put the nested tree at 1.08x and 1.25x of
/// `JoinSet`: a round's ratio ranges over 0.5x to 3x on a shared machine.
/// With 101 the median's 90% interval (`median_interval`) is 0.03 to 0.1
/// wide, and the whole report takes about five minutes here
/// (benches/PROFILE-NOTES.md, session 14).
const ROUNDS: usize = 101;

/// Tasks per sample: small cases repeat until they start this many.
const TASKS_PER_SAMPLE: usize = 100_000;

/// What was measured of one variant in one case.
struct Measured {
    /// Seconds per task, one per round.
    per_task: Vec<f64>,
    /// Seconds per run (one run = `case.tasks` tasks), one per round.
    per_run: Vec<f64>,
}

/// A goal an issue set for a variant, as a bound on its ratio to another
/// variant of the same case (its time divided by that variant's time in the
/// same round, the median over the rounds).
struct Target {
    case: &'static str,
    variant: &'static str,
    /// The id of the variant it is compared with.
    against: &'static str,
    limit: f64,
    text: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        case: "spawn_join/100000",
        variant: "taskward-fn",
        against: "raw",
        limit: 1.5,
        text: "≤ 1.5x raw (issue 6)",
    },
    Target {
        case: "spawn_join/100000",
        variant: "taskward-fn",
        against: "joinset",
        limit: 1.0,
        text: "≤ 1.0x JoinSet",
    },
    Target {
        case: "spawn_join/100000",
        variant: "taskward-block",
        against: "raw",
        limit: 1.5,
        text: "≤ 1.5x raw (issue 6)",
    },
    Target {
        case: "spawn_join/100000",
        variant: "taskward-block",
        against: "joinset",
        limit: 1.0,
        text: "≤ 1.0x JoinSet",
    },
    Target {
        case: "spawn_join/100000",
        variant: "taskward-dropped",
        against: "raw",
        limit: 1.6,
        text: "≤ 1.6x raw",
    },
    Target {
        case: "spawn_join/100000",
        variant: "taskward-dropped",
        against: "tracker-dropped",
        limit: 0.9,
        text: "≤ 0.9x TaskTracker, handles dropped",
    },
    Target {
        case: "group/100000",
        variant: "taskward-fn",
        against: "joinset",
        limit: 1.1,
        text: "≤ 1.1x JoinSet",
    },
    Target {
        case: "group/100000",
        variant: "taskward-block",
        against: "joinset",
        limit: 1.1,
        text: "≤ 1.1x JoinSet",
    },
    Target {
        case: "nested_tree/depth4_fanout10",
        variant: "taskward-fn",
        against: "joinset",
        limit: 1.1,
        text: "≤ 1.1x JoinSet per node",
    },
    Target {
        case: "cancel_idle/50000",
        variant: "taskward-fn",
        against: "tracker",
        limit: 1.15,
        text: "≤ 1.15x TaskTracker",
    },
    Target {
        case: "error_routing/10000",
        variant: "taskward-next-error",
        against: "mpsc",
        limit: 1.4,
        text: "≤ 1.4x mpsc",
    },
];

/// The per-round ratios of `m` to `base`.
fn ratios(m: &Measured, base: &Measured) -> Vec<f64> {
    m.per_run.iter().zip(&base.per_run).map(|(v, b)| v / b).collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A 90% confidence interval for the median of the distribution `values`
/// were drawn from, whatever its shape: the `r`-th smallest and the `r`-th
/// largest value, for the largest `r` that leaves out the median with a
/// chance of at most 5% on each side (`P(Binomial(n, 1/2) < r) <= 0.05`).
/// `None` under 5 values, too few for such an `r`.
///
/// A round's ratio moves far more than a median of 25 or 101 of them does:
/// the interval says how far this run's median may be from the one its
/// rounds would give if there were many more. It leaves out what moves a
/// whole run: two runs of one build at different times have differed by
/// more than it (benches/PROFILE-NOTES.md, session 14).
fn median_interval(values: &[f64]) -> Option<(f64, f64)> {
    let n = values.len();
    let ln_half_n = n as f64 * 0.5_f64.ln();
    // `ln C(n, i)`, and `P(Binomial(n, 1/2) <= i)`, summed in logs so that
    // thousands of rounds do not underflow `0.5^n`.
    let (mut ln_choose, mut below) = (0.0, 0.0);
    let mut r = 0;
    for i in 0..n {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64 / i as f64).ln();
        }
        below += (ln_choose + ln_half_n).exp();
        if below > 0.05 {
            break;
        }
        r = i + 1;
    }
    if r == 0 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some((sorted[r - 1], sorted[n - r]))
}

fn human(seconds: f64) -> String {
    match seconds {
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 1e-3 => format!("{:.1} ms", s * 1e3),
        s if s >= 1e-6 => format!("{:.2} µs", s * 1e6),
        s => format!("{:.0} ns", s * 1e9),
    }
}

/// Whether `filter` (texts separated by commas, any of which may match;
/// one ending in `$` must end the name) selects `variant`:
/// `--filter spawn_join/100000/raw,spawn_join/100000/taskward` runs the
/// baseline beside taskward's variants only, and `.../tracker$` leaves out
/// `tracker-dropped`, as an A/B of two builds needs when one of them has
/// variants the other lacks.
fn selected(case: &Case, variant: &cases::Variant, filter: Option<&str>) -> bool {
    let name = format!("{}/{}", case.name(), variant.id);
    filter.is_none_or(|f| {
        f.split(',').any(|part| match part.strip_suffix('$') {
            Some(end) => name.ends_with(end),
            None => name.contains(part),
        })
    })
}

/// What `measure` keeps of one case while the rounds run.
struct Plan<'a> {
    case: &'a Case,
    /// The case's own runtime, made once.
    rt: tokio::runtime::Runtime,
    /// Runs per sample.
    iters: u64,
    /// The indices of the selected variants.
    chosen: Vec<usize>,
    /// One entry per variant, `None` for a variant not selected.
    measured: Vec<Option<Measured>>,
}

/// Runs every selected variant of every case in `cases` (each has at
/// least one) for `rounds` interleaved rounds, and gives each case's
/// measurements (one entry per variant, `None` where not selected).
///
/// Round `r` runs every case once, one after the other, each on its own
/// runtime, before round `r + 1` begins: every case's rounds are spread
/// over the whole run, so that a change of the machine's state during it
/// (a neighbour's load, which moved whole one-case stretches of a minute
/// by more than their 90% intervals) weighs on every case alike, rather
/// than on the one case that was running then. Within a case's turn, the
/// variants run in the order of a Williams design (`order.rs`).
fn measure(cases: &[Case], rounds: usize, filter: Option<&str>) -> Vec<Vec<Option<Measured>>> {
    let mut plans: Vec<Plan<'_>> = cases
        .iter()
        .map(|case| {
            let chosen: Vec<usize> = (0..case.variants.len())
                .filter(|&i| selected(case, &case.variants[i], filter))
                .collect();
            let measured = (0..case.variants.len())
                .map(|i| {
                    chosen.contains(&i).then(|| Measured {
                        per_task: Vec::new(),
                        per_run: Vec::new(),
                    })
                })
                .collect();
            Plan {
                case,
                rt: runtime(),
                iters: (TASKS_PER_SAMPLE / case.tasks).max(1) as u64,
                chosen,
                measured,
            }
        })
        .collect();
    // One untimed run of each first: thread start, allocator and caches.
    for plan in &plans {
        eprintln!("warming up {} ({} tasks per run)", plan.case.name(), plan.case.tasks);
        for &i in &plan.chosen {
            plan.case.time(&plan.rt, &plan.case.variants[i], 1);
        }
    }
    for round in 0..rounds {
        if round % 10 == 0 {
            eprintln!("round {} of {rounds}", round + 1);
        }
        for plan in &mut plans {
            // The variant that ran last in this case's previous turn runs
            // once more, untimed: each timed run then follows a run of its
            // own case, on the heap and caches that case leaves, as when
            // the cases ran one after the other, not a run of the case
            // before on another runtime (which the order would spread over
            // the variants, but which need not slow them all alike). About
            // 15% more time. Not before the first round, which follows the
            // warm-ups: so that `--rounds 1`, for a profile, still runs one
            // warm-up run and one sample of each variant selected.
            if let Some(last) = round
                .checked_sub(1)
                .and_then(|before| order::order(plan.chosen.len(), before).last().copied())
            {
                plan.case
                    .time(&plan.rt, &plan.case.variants[plan.chosen[last]], plan.iters);
            }
            for k in order::order(plan.chosen.len(), round) {
                let i = plan.chosen[k];
                let elapsed: Duration = plan.case.time(&plan.rt, &plan.case.variants[i], plan.iters);
                let per_run = elapsed.as_secs_f64() / plan.iters as f64;
                let m = plan.measured[i].as_mut().expect("a chosen variant");
                m.per_run.push(per_run);
                m.per_task.push(per_run / plan.case.tasks as f64);
            }
        }
    }
    plans.into_iter().map(|plan| plan.measured).collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "?".to_owned(), |s| s.trim().to_owned())
}

/// The version of `krate` in Cargo.lock.
fn locked_version(krate: &str) -> String {
    let lock = read(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"));
    let needle = format!("name = \"{krate}\"\nversion = \"");
    lock.find(&needle)
        .map(|at| &lock[at + needle.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("?")
        .to_owned()
}

fn machine() -> String {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("?");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let memory = format!("{:.0} GiB", memory_kib / (1024.0 * 1024.0));
    format!(
        "- machine: {cores} cores ({cpu}), {memory} of memory, Linux {}; \
         shared with other work, so the load average is given below\n\
         - toolchain: {}; tokio {}, tokio-util {}; `cargo bench` profile (release, line tables)\n\
         - runtime: tokio multi-thread, {} worker threads, the work driven from a task on a worker\n",
        read("/proc/sys/kernel/osrelease").trim(),
        command_line("rustc", &["--version"]),
        locked_version("tokio"),
        locked_version("tokio-util"),
        worker_threads(),
    )
}

fn load() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let args = Args::parse();
    let rounds = args.rounds.unwrap_or(ROUNDS).max(1);
    let filter = args.filter.as_deref();
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let load_before = load();

    let mut table = String::from(
        "| case | variant | per task | per run | × baseline | spread of × over rounds | target |\n\
         |---|---|---:|---:|---:|---:|---|\n",
    );
    let mut verdicts = String::new();
    // `--samples`: the file, made before the timing so that a path that
    // cannot be written fails at once, not after minutes of it, and the
    // lines for it.
    let mut samples = args.samples.as_ref().map(|path| match std::fs::File::create(path) {
        Ok(file) => (path, file, String::from("case,variant,round,seconds_per_run\n")),
        Err(err) => {
            eprintln!("cannot write the samples into {path}: {err}");
            std::process::exit(2);
        }
    });
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|case| case.variants.iter().any(|v| selected(case, v, filter)))
        .collect();
    let all = measure(&cases, rounds, filter);
    for (case, measured) in cases.iter().zip(all) {
        if let Some((_, _, lines)) = &mut samples {
            for (variant, m) in case.variants.iter().zip(&measured) {
                for (round, per_run) in m.iter().flat_map(|m| m.per_run.iter().enumerate()) {
                    let _ = writeln!(lines, "{},{},{round},{per_run:e}", case.name(), variant.id);
                }
            }
        }
        let baseline = measured[0].as_ref();
        for (variant, m) in case.variants.iter().zip(&measured) {
            let Some(m) = m else { continue };
            let (ratio, spread) = match baseline {
                Some(base) => {
                    let per_round = ratios(m, base);
                    let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = per_round.iter().copied().fold(0.0, f64::max);
                    (Some(median(&per_round)), format!("{lo:.2}–{hi:.2}"))
                }
                None => (None, "-".to_owned()),
            };
            let mut target_text = Vec::new();
            for t in TARGETS
                .iter()
                .filter(|t| t.case == case.name() && t.variant == variant.id)
            {
                let against = case
                    .variants
                    .iter()
                    .position(|v| v.id == t.against)
                    .and_then(|i| measured[i].as_ref());
                let Some(against) = against else { continue };
                let per_round = ratios(m, against);
                let r = median(&per_round);
                let met = if r <= t.limit { "met" } else { "**not met**" };
                // Where the interval reaches across the limit, another run
                // may well give the other verdict.
                let (interval, noise) = match median_interval(&per_round) {
                    Some((lo, hi)) => (
                        format!(" (90% interval {lo:.2}–{hi:.2})"),
                        if lo <= t.limit && t.limit < hi {
                            ", within the noise"
                        } else {
                            ""
                        },
                    ),
                    None => (String::new(), ""),
                };
                let _ = writeln!(
                    verdicts,
                    "- `{}` {}: {r:.2}x{interval}, target {}: {met}{noise}",
                    case.name(),
                    variant.name,
                    t.text
                );
                target_text.push(format!("{r:.2}x{interval}, {} — {met}{noise}", t.text));
            }
            let target_text = target_text.join("; ");
            let _ = writeln!(
                table,
                "| `{}` | {} | {} | {} | {} | {spread} | {target_text} |",
                case.name(),
                if variant.id == case.variants[0].id {
                    format!("{} (baseline)", variant.name)
                } else {
                    variant.name.to_owned()
                },
                human(median(&m.per_task)),
                human(median(&m.per_run)),
                ratio.map_or_else(|| "-".to_owned(), |r| format!("**{r:.2}x**")),
            );
        }
    }

    let body = format!(
        "Generated {date} by `cargo bench -p taskward-benches --bench report -- --write` \
         (or the command above), {rounds} interleaved rounds.\n\n\
         {}- load average (1, 5, 15 min): {load_before} before, {} after\n\n{table}\n{verdicts}",
        machine(),
        load(),
    );
    print!("{body}");
    if let Some((path, mut file, lines)) = samples {
        match std::io::Write::write_all(&mut file, lines.as_bytes()) {
            Ok(()) => eprintln!("wrote every sample into {path}"),
            Err(err) => {
                eprintln!("cannot write the samples into {path}: {err}");
                std::process::exit(1);
            }
        }
    }
    if args.write && filter.is_none() {
        match write_section("report", &body) {
            Ok(path) => eprintln!("wrote the timing table into {}", path.display()),
            Err(err) => {
                eprintln!("{err}");
                std::process::exit(1);
            }
        }
    } else if args.write {
        eprintln!("--write ignored: a filtered run does not replace the full table");
    }
}
