//! Generation: proptest strategies that produce valid [`Scenario`]s.
//!
//! The strategies draw an abstract *recipe* (users, callbacks, a fault plan and steps
//! that name jobs, users and callbacks by index) and [`Recipe::scenario`] turns it into
//! a scenario. Because the indices are resolved modulo what exists at that point, every
//! recipe — and every recipe proptest shrinks to — gives a scenario that loads: a step
//! about job 3 when only one job exists is about that job, and a step about a job
//! before any exists is dropped.
//!
//! Weighted towards what breaks: failing routes and faults, retries and timers
//! (short retry delays and no-progress timeouts, long advances), and slot pressure
//! (several users, blocking and failing callbacks).

use bitsim_model::{Flavor, Hresult, JobState, JobType, Span};
use bitsim_scenario::format::{
    CallbackPolicy, Dur, Expectation, FileSpec, FlagsSpec, FlavorName, Hr, KindName, PrioritySpec, StateName, TextSpec,
    TypeName,
};
use bitsim_scenario::{Scenario, Step, StepEntry};
use bitsim_server::Plan;
use bitsim_server::{Fault, Match, ResetPoint, Rule};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The user names a recipe can use (the first is the default owner).
pub const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// What a generated scenario is made of, before indices are resolved.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub flavor: Flavor,
    pub seed: u64,
    pub users: usize,
    pub callbacks: Vec<CallbackPolicy>,
    pub rules: Vec<Rule>,
    pub steps: Vec<Op>,
    /// The scenario is cut to this many steps.
    pub max_steps: usize,
}

/// A download route on the mock server.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    Bytes(u64),
    Status(u16),
    Redirect(u8, u64),
}

impl Route {
    fn path(self) -> String {
        match self {
            Route::Bytes(n) => format!("/bytes/{n}"),
            Route::Status(s) => format!("/status/{s}"),
            Route::Redirect(hops, n) => format!("/redirect/{hops}/bytes/{n}"),
        }
    }
}

/// One abstract step. `job`, `user` and `callback` are indices resolved modulo what
/// exists when the step runs.
#[derive(Debug, Clone)]
pub enum Op {
    CreateJob {
        user: u8,
        job_type: JobType,
    },
    AddFiles {
        job: u8,
        files: Vec<(Route, u8)>,
        upload_size: u64,
    },
    Resume {
        job: u8,
    },
    Suspend {
        job: u8,
    },
    Cancel {
        job: u8,
    },
    Complete {
        job: u8,
    },
    SetPriority {
        job: u8,
        value: u32,
    },
    SetNotifyFlags {
        job: u8,
        flags: u32,
    },
    SetNotifyInterface {
        job: u8,
        callback: Option<u8>,
    },
    SetNotifyCmdline {
        job: u8,
        set: bool,
        exit_codes: Vec<i32>,
    },
    SetMinimumRetryDelay {
        job: u8,
        seconds: u32,
    },
    SetNoProgressTimeout {
        job: u8,
        seconds: u32,
    },
    SetMaximumDownloadTime {
        job: u8,
        seconds: u32,
    },
    SetReplyFileName {
        job: u8,
        local: Option<u8>,
    },
    SetDisplayName {
        job: u8,
        length: usize,
    },
    TakeOwnership {
        job: u8,
        user: u8,
    },
    GetJob {
        job: u8,
        user: u8,
    },
    Wait {
        job: u8,
        states: Vec<JobState>,
        within: Span,
    },
    Advance {
        by: Span,
    },
    NetworkLost,
    NetworkRestored,
    Logoff {
        user: u8,
    },
    Logon {
        user: u8,
    },
    ServiceRestart,
    SetPlan {
        rules: Vec<Rule>,
    },
    ReleaseCallback {
        callback: u8,
    },
    Checkpoint {
        job: u8,
    },
    /// Slot pressure: `jobs` downloads for one user, each with callback `callback`
    /// registered for every notification, all resumed.
    Crowd {
        user: u8,
        jobs: u8,
        callback: u8,
        size: u64,
    },
}

fn hr(h: Hresult) -> Hr {
    Hr(h)
}

/// Callback return codes: S_OK, failures and S_FALSE (a success code that is not S_OK).
fn return_code() -> impl Strategy<Value = Hr> {
    prop_oneof![
        6 => Just(hr(Hresult::S_OK)),
        3 => Just(hr(Hresult::E_FAIL)),
        2 => Just(hr(Hresult::S_FALSE)),
        1 => Just(hr(Hresult::RPC_E_DISCONNECTED)),
    ]
}

fn callback_policy() -> impl Strategy<Value = CallbackPolicy> {
    let block = prop_oneof![
        5 => Just(None),
        2 => (1u64..=600).prop_map(|s| Some(Dur(Span::from_secs(s)))),
        1 => Just(Some(Dur(Span::from_secs(3_600)))),
    ];
    (
        prop::collection::vec(return_code(), 0..4),
        prop::option::weighted(0.2, prop::collection::vec(return_code(), 1..3)),
        block,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(returns, by_kind, block, until_release, disconnected, callback2)| {
            let mut returns_by_kind = BTreeMap::new();
            if let Some(list) = by_kind {
                returns_by_kind.insert(KindName(bitsim_model::NotificationKind::JobModification), list);
            }
            CallbackPolicy {
                returns,
                returns_by_kind,
                block,
                block_until_release: until_release,
                disconnected,
                callback2,
            }
        })
}

fn download_route() -> impl Strategy<Value = Route> {
    prop_oneof![
        8 => prop::sample::select(vec![0u64, 1, 1_000, 10_000, 65_536, 200_000]).prop_map(Route::Bytes),
        4 => prop::sample::select(vec![400u16, 401, 403, 404, 407, 408, 409, 410, 416, 429, 500, 501, 502, 503, 504, 505])
            .prop_map(Route::Status),
        1 => (1u8..=3, prop::sample::select(vec![100u64, 5_000])).prop_map(|(h, n)| Route::Redirect(h, n)),
    ]
}

/// A fault from the mock server's catalogue (bits-http §5.3), for downloads or uploads.
fn fault() -> impl Strategy<Value = Fault> {
    let status = prop::sample::select(vec![403u16, 404, 408, 500, 503, 501, 416]);
    prop_oneof![
        4 => status.prop_map(|status| Fault::Status { status, headers: BTreeMap::new(), body: None }),
        2 => prop::option::of(prop::sample::select(vec![1_000u64, 30_000, 600_000])).prop_map(|ms| Fault::Stall { ms }),
        2 => prop::sample::select(vec![ResetPoint::BeforeResponse, ResetPoint::AfterHeaders, ResetPoint::MidBody])
            .prop_map(|at| Fault::Reset { at, after_bytes: None }),
        2 => prop::sample::select(vec![0u64, 10, 500]).prop_map(|after_bytes| Fault::Truncate { after_bytes }),
        1 => Just(Fault::EmptyResponse),
        1 => Just(Fault::Garbage { bytes: 64 }),
        1 => Just(Fault::IgnoreRange),
        1 => Just(Fault::OmitContentLength { framing: Default::default() }),
        1 => prop::sample::select(vec![50u64, 5_000]).prop_map(|s| Fault::Change { size: Some(s), last_modified: Some(1_800_000_000), etag: None }),
        1 => prop::sample::select(vec![100u64, 5_000, 120_000]).prop_map(|ms| Fault::Delay { ms, max_ms: None, sigma: None }),
        1 => (1u32..=4, prop::sample::select(vec![1_000u64, 60_000])).prop_map(|(chunks, total_ms)| Fault::Dribble { chunks, total_ms }),
        1 => prop::sample::select(vec![500u16, 403, 404, 503]).prop_map(|status| Fault::BitsError { status, code: None, context: None }),
        1 => Just(Fault::ExpireSession),
        1 => prop::sample::select(vec![500u16, 404, 408]).prop_map(|status| Fault::AppError { status, code: None }),
        1 => Just(Fault::OmitReplyUrl),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    let method = prop::option::of(prop::sample::select(vec!["GET", "HEAD", "BITS_POST"]));
    let prefix = prop::option::of(prop::sample::select(vec![
        "/bytes/",
        "/upload/",
        "/upload-reply/",
        "/redirect/",
    ]));
    let window = prop::option::of((1u64..=3, 0u64..=3));
    (method, prefix, window, fault()).prop_map(|(method, prefix, window, fault)| Rule {
        matcher: Match {
            method: method.map(str::to_string),
            path_prefix: prefix.map(str::to_string),
            from: window.map(|(from, _)| from),
            to: window.map(|(from, extra)| from + extra),
            ..Match::default()
        },
        fault: Some(fault),
        ..Rule::default()
    })
}

/// Short delays make the retry and no-progress timers fire within a scenario.
fn seconds_setting() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![0u32, 1, 5, 10, 30, 60, 120, 600, 1_209_600])
}

/// Mostly seconds to an hour; now and then the days that the no-progress timeout
/// (14 days), DO's retention (30) and the inactivity timeout (90) need. Days are rare
/// (one span in 145, about 1.5 % of scenarios) because days of retries and callback
/// re-deliveries cost as much as hundreds of short runs: at one span in 37 (4 % of
/// scenarios) they took four fifths of the run time, and exploration explored about
/// as many days-long scenarios per second as now, but four times fewer short ones.
fn span() -> impl Strategy<Value = Span> {
    prop_oneof![
        96 => (1u64..=120).prop_map(Span::from_secs),
        48 => prop::sample::select(vec![300u64, 600, 1_800, 3_600]).prop_map(Span::from_secs),
        1 => prop::sample::select(vec![1u64, 14, 31, 91]).prop_map(Span::from_days),
    ]
}

fn state_set() -> impl Strategy<Value = Vec<JobState>> {
    prop::sample::subsequence(JobState::ALL.to_vec(), 1..4)
}

fn op() -> impl Strategy<Value = Op> {
    // Two levels of unions with the same weights as one flat union: proptest's
    // Union sets up a lazy tree (a runner clone and a fresh RNG) for every option
    // before the one it picks, which with 28 flat options was a seventh of
    // explore's time. Options keep their order (shrinking prefers earlier ones).
    let job = any::<u8>;
    let user = || 0u8..3;
    // Jobs and their lifecycle.
    let lifecycle = prop_oneof![
        6 => (user(), prop_oneof![6 => Just(JobType::Download), 1 => Just(JobType::Upload), 1 => Just(JobType::UploadReply)])
            .prop_map(|(user, job_type)| Op::CreateJob { user, job_type }),
        8 => (job(), prop::collection::vec((download_route(), 0u8..6), 1..3), prop::sample::select(vec![0u64, 100, 70_000]))
            .prop_map(|(job, files, upload_size)| Op::AddFiles { job, files, upload_size }),
        8 => job().prop_map(|job| Op::Resume { job }),
        2 => job().prop_map(|job| Op::Suspend { job }),
        2 => job().prop_map(|job| Op::Cancel { job }),
        3 => job().prop_map(|job| Op::Complete { job }),
    ];
    // Job settings.
    let settings = prop_oneof![
        2 => (job(), prop_oneof![9 => 0u32..4, 1 => Just(7u32)]).prop_map(|(job, value)| Op::SetPriority { job, value }),
        2 => (job(), prop_oneof![3 => Just(3u32), 2 => Just(0xBu32), 2 => 0u32..16, 1 => Just(0x1Fu32)]).prop_map(|(job, flags)| Op::SetNotifyFlags { job, flags }),
        5 => (job(), prop::option::weighted(0.85, any::<u8>())).prop_map(|(job, callback)| Op::SetNotifyInterface { job, callback }),
        2 => (job(), prop::bool::weighted(0.85), prop::collection::vec(prop_oneof![2 => Just(0), 1 => Just(1)], 0..3))
            .prop_map(|(job, set, exit_codes)| Op::SetNotifyCmdline { job, set, exit_codes }),
        3 => (job(), seconds_setting()).prop_map(|(job, seconds)| Op::SetMinimumRetryDelay { job, seconds }),
        3 => (job(), seconds_setting()).prop_map(|(job, seconds)| Op::SetNoProgressTimeout { job, seconds }),
        1 => (job(), seconds_setting()).prop_map(|(job, seconds)| Op::SetMaximumDownloadTime { job, seconds }),
        1 => (job(), prop::option::of(0u8..3)).prop_map(|(job, local)| Op::SetReplyFileName { job, local }),
        1 => (job(), prop_oneof![Just(10usize), Just(257usize)]).prop_map(|(job, length)| Op::SetDisplayName { job, length }),
    ];
    // Owners, waits and time.
    let owners_and_time = prop_oneof![
        1 => (job(), user()).prop_map(|(job, user)| Op::TakeOwnership { job, user }),
        1 => (job(), user()).prop_map(|(job, user)| Op::GetJob { job, user }),
        4 => (job(), state_set(), span()).prop_map(|(job, states, within)| Op::Wait { job, states, within }),
        8 => span().prop_map(|by| Op::Advance { by }),
    ];
    // The environment, the plan and callbacks.
    let environment = prop_oneof![
        1 => Just(Op::NetworkLost),
        1 => Just(Op::NetworkRestored),
        1 => user().prop_map(|user| Op::Logoff { user }),
        1 => user().prop_map(|user| Op::Logon { user }),
        1 => Just(Op::ServiceRestart),
        1 => prop::collection::vec(rule(), 0..3).prop_map(|rules| Op::SetPlan { rules }),
        2 => any::<u8>().prop_map(|callback| Op::ReleaseCallback { callback }),
        3 => job().prop_map(|job| Op::Checkpoint { job }),
        3 => (user(), 2u8..=6, any::<u8>(), prop::sample::select(vec![0u64, 1_000, 100_000]))
            .prop_map(|(user, jobs, callback, size)| Op::Crowd { user, jobs, callback, size }),
    ];
    // Boxed: a union's value tree holds every option's tree inline, and nested
    // unions of unboxed trees are kilobytes to move per step.
    prop_oneof![
        29 => lifecycle.boxed(),
        20 => settings.boxed(),
        14 => owners_and_time.boxed(),
        14 => environment.boxed(),
    ]
}

/// Recipes with at most `max_steps` steps, of `flavor` (default: either).
pub fn recipe(max_steps: usize, flavor: Option<Flavor>) -> impl Strategy<Value = Recipe> {
    let flavor = match flavor {
        Some(f) => Just(f).boxed(),
        None => prop_oneof![4 => Just(Flavor::Bits), 1 => Just(Flavor::DeliveryOptimization)].boxed(),
    };
    (
        flavor,
        any::<u64>(),
        prop_oneof![2 => Just(1usize), 2 => Just(2usize), 1 => Just(3usize)],
        prop::collection::vec(callback_policy(), 0..4),
        prop::collection::vec(rule(), 0..3),
        prop::collection::vec(op(), 1..=max_steps.max(1)),
    )
        .prop_map(move |(flavor, seed, users, callbacks, rules, steps)| Recipe {
            max_steps,
            flavor,
            // Few seeds: the mock server's body pattern is built once per seed.
            seed: seed % 32,
            users,
            callbacks,
            rules,
            steps,
        })
}

/// Scenarios with at most `max_steps` steps (a few more when an upload needs its
/// source file written first).
pub fn scenario(max_steps: usize, flavor: Option<Flavor>) -> impl Strategy<Value = Scenario> {
    recipe(max_steps, flavor).prop_map(|r| r.scenario())
}

fn plan_of(rules: &[Rule]) -> Option<Plan> {
    (!rules.is_empty()).then(|| Plan {
        rules: rules.to_vec(),
        ..Plan::default()
    })
}

impl Recipe {
    /// The scenario this recipe describes; it always loads.
    pub fn scenario(&self) -> Scenario {
        let users: Vec<String> = USERS[..self.users.clamp(1, USERS.len())]
            .iter()
            .map(|u| u.to_string())
            .collect();
        let callbacks: BTreeMap<String, CallbackPolicy> = self
            .callbacks
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("cb{i}"), p.clone()))
            .collect();
        let callback_names: Vec<String> = callbacks.keys().cloned().collect();
        let mut jobs: Vec<(String, JobType)> = Vec::new();
        let mut steps = Vec::new();
        let mut uploads_written = 0usize;
        for op in &self.steps {
            let pick_job = |j: u8| (!jobs.is_empty()).then(|| jobs[j as usize % jobs.len()].clone());
            let user = |u: u8| users[u as usize % users.len()].clone();
            let mut push = |step: Step| steps.push(step);
            match op {
                Op::CreateJob { user: u, job_type } => {
                    let alias = format!("j{}", jobs.len() + 1);
                    jobs.push((alias.clone(), *job_type));
                    push(Step::CreateJob {
                        job: alias,
                        user: (!(*u as usize).is_multiple_of(users.len())).then(|| user(*u)),
                        name: None,
                        job_type: (*job_type != JobType::Download).then_some(TypeName(*job_type)),
                        expect: None,
                    });
                }
                Op::AddFiles {
                    job,
                    files,
                    upload_size,
                } => {
                    let Some((job, job_type)) = pick_job(*job) else {
                        continue;
                    };
                    if job_type == JobType::Download {
                        let files: Vec<FileSpec> = files
                            .iter()
                            .map(|(route, local)| FileSpec {
                                url: route.path(),
                                local: format!("f{local}.bin"),
                            })
                            .collect();
                        if files.len() == 1 {
                            let f = &files[0];
                            push(Step::AddFile {
                                job,
                                url: f.url.clone(),
                                local: f.local.clone(),
                                expect: None,
                            });
                        } else {
                            push(Step::AddFiles {
                                job,
                                files,
                                expect: None,
                            });
                        }
                    } else {
                        // An upload's source is a local file: write it first.
                        uploads_written += 1;
                        let name = format!("up{uploads_written}.bin");
                        push(Step::WriteFile {
                            name: name.clone(),
                            size: *upload_size,
                        });
                        let endpoint = if job_type == JobType::Upload {
                            "upload"
                        } else {
                            "upload-reply"
                        };
                        push(Step::AddFile {
                            job,
                            url: format!("/{endpoint}/{name}"),
                            local: name,
                            expect: None,
                        });
                    }
                }
                Op::Resume { job } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Resume { job, expect: None });
                    }
                }
                Op::Suspend { job } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Suspend { job, expect: None });
                    }
                }
                Op::Cancel { job } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Cancel { job, expect: None });
                    }
                }
                Op::Complete { job } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Complete { job, expect: None });
                    }
                }
                Op::SetPriority { job, value } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetPriority {
                            job,
                            value: PrioritySpec(*value),
                            expect: None,
                        });
                    }
                }
                Op::SetNotifyFlags { job, flags } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetNotifyFlags {
                            job,
                            value: FlagsSpec(*flags),
                            expect: None,
                        });
                    }
                }
                Op::SetNotifyInterface { job, callback } => {
                    let Some((job, _)) = pick_job(*job) else { continue };
                    let callback = match callback {
                        Some(c) if !callback_names.is_empty() => {
                            Some(callback_names[*c as usize % callback_names.len()].clone())
                        }
                        _ => None,
                    };
                    push(Step::SetNotifyInterface {
                        job,
                        callback,
                        expect: None,
                    });
                }
                Op::SetNotifyCmdline { job, set, exit_codes } => {
                    let Some((job, _)) = pick_job(*job) else { continue };
                    let (program, parameters) = if *set {
                        let program = "C:\\notify.exe".to_string();
                        (
                            Some(TextSpec::Text(program.clone())),
                            Some(TextSpec::Text(format!("{program} {job}"))),
                        )
                    } else {
                        (None, None)
                    };
                    push(Step::SetNotifyCmdline {
                        job,
                        program,
                        parameters,
                        exit_codes: exit_codes.clone(),
                        expect: None,
                    });
                }
                Op::SetMinimumRetryDelay { job, seconds } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetMinimumRetryDelay {
                            job,
                            seconds: *seconds,
                            expect: None,
                        });
                    }
                }
                Op::SetNoProgressTimeout { job, seconds } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetNoProgressTimeout {
                            job,
                            seconds: *seconds,
                            expect: None,
                        });
                    }
                }
                Op::SetMaximumDownloadTime { job, seconds } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetMaximumDownloadTime {
                            job,
                            seconds: *seconds,
                            expect: None,
                        });
                    }
                }
                Op::SetReplyFileName { job, local } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetReplyFileName {
                            job,
                            local: local.map(|l| format!("reply{l}.bin")),
                            expect: None,
                        });
                    }
                }
                Op::SetDisplayName { job, length } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::SetDisplayName {
                            job,
                            value: TextSpec::Repeat {
                                repeat: "n".into(),
                                times: *length,
                            },
                            expect: None,
                        });
                    }
                }
                Op::TakeOwnership { job, user: u } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::TakeOwnership {
                            job,
                            user: user(*u),
                            expect: None,
                        });
                    }
                }
                Op::GetJob { job, user: u } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::GetJob {
                            job,
                            user: Some(user(*u)),
                            expect: None,
                        });
                    }
                }
                Op::Wait { job, states, within } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Wait {
                            job,
                            state: None,
                            states: states.iter().map(|s| StateName(*s)).collect(),
                            within: Dur(*within),
                        });
                    }
                }
                Op::Advance { by } => push(Step::Advance { by: Dur(*by) }),
                Op::NetworkLost => push(Step::NetworkLost {}),
                Op::NetworkRestored => push(Step::NetworkRestored {}),
                Op::Logoff { user: u } => push(Step::Logoff { user: user(*u) }),
                Op::Logon { user: u } => push(Step::Logon { user: user(*u) }),
                Op::ServiceRestart => push(Step::ServiceRestart {}),
                Op::SetPlan { rules } => push(Step::SetPlan {
                    plan: Some(plan_of(rules).unwrap_or_default()),
                    plan_file: None,
                }),
                Op::ReleaseCallback { callback } => {
                    if !callback_names.is_empty() {
                        push(Step::ReleaseCallback {
                            callback: callback_names[*callback as usize % callback_names.len()].clone(),
                        });
                    }
                }
                Op::Checkpoint { job } => {
                    if let Some((job, _)) = pick_job(*job) {
                        push(Step::Expect(Box::new(Expectation {
                            job,
                            ..Expectation::default()
                        })));
                    }
                }
                Op::Crowd {
                    user: u,
                    jobs: n,
                    callback,
                    size,
                } => {
                    let callback = (!callback_names.is_empty())
                        .then(|| callback_names[*callback as usize % callback_names.len()].clone());
                    let owner = (!(*u as usize).is_multiple_of(users.len())).then(|| user(*u));
                    for _ in 0..*n {
                        let alias = format!("j{}", jobs.len() + 1);
                        jobs.push((alias.clone(), JobType::Download));
                        steps.push(Step::CreateJob {
                            job: alias.clone(),
                            user: owner.clone(),
                            name: None,
                            job_type: None,
                            expect: None,
                        });
                        steps.push(Step::AddFile {
                            job: alias.clone(),
                            url: format!("/bytes/{size}"),
                            local: format!("{alias}.bin"),
                            expect: None,
                        });
                        if let Some(cb) = &callback {
                            steps.push(Step::SetNotifyFlags {
                                job: alias.clone(),
                                value: FlagsSpec(0xB),
                                expect: None,
                            });
                            steps.push(Step::SetNotifyInterface {
                                job: alias.clone(),
                                callback: Some(cb.clone()),
                                expect: None,
                            });
                        }
                        steps.push(Step::Resume {
                            job: alias,
                            expect: None,
                        });
                    }
                }
            }
        }
        steps.truncate(self.max_steps.max(1));
        Scenario {
            schema: None,
            description: "generated by bitsim explore".into(),
            covers: Vec::new(),
            flavors: vec![FlavorName(self.flavor)],
            seed: Some(self.seed),
            users,
            user_kinds: Default::default(),
            plan: plan_of(&self.rules),
            plan_file: None,
            callbacks,
            sim_only: true,
            steps: steps
                .into_iter()
                .map(|step| StepEntry {
                    line: 0,
                    step,
                    only: None,
                })
                .collect(),
        }
    }
}

/// The scenario as compact JSON, every field written: what explore loads for each
/// case (the loader's full path, at a third of [`to_json`]'s cost). It loads to
/// the same scenario as [`to_json`]'s text (tests/generate.rs checks both).
pub fn to_load_json(scenario: &Scenario) -> String {
    serde_json::to_string(scenario).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The scenario as the JSON a user would write (pretty, two-space indent); plan
/// settings left at their defaults are not written.
pub fn to_json(scenario: &Scenario) -> String {
    let mut value = match serde_json::to_value(scenario) {
        Ok(v) => v,
        Err(e) => return format!("{{\"error\": \"{e}\"}}"),
    };
    // The default plan's settings, as written (computed once).
    static DEFAULTS: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    let defaults = DEFAULTS.get_or_init(|| {
        let mut defaults = serde_json::to_value(Plan::default()).unwrap_or_default();
        strip_defaults(&mut defaults);
        defaults
    });
    let trim = |plan: Option<&mut serde_json::Value>| {
        if let (Some(serde_json::Value::Object(fields)), Some(defaults)) = (plan, defaults.as_object()) {
            fields.retain(|k, v| defaults.get(k) != Some(v));
        }
    };
    strip_defaults(&mut value);
    trim(value.get_mut("plan"));
    if let Some(steps) = value.get_mut("steps").and_then(|s| s.as_array_mut()) {
        for step in steps {
            trim(step.get_mut("plan"));
        }
    }
    let mut out = String::with_capacity(4096);
    write_ordered(&value, 0, &mut out);
    out
}

/// Leaves out what a reader would not write: nulls (an absent optional field reads
/// as none), empty lists and maps, `false` flags and `callback2: true` (the defaults).
fn strip_defaults(value: &mut serde_json::Value) {
    strip_defaults_in(value, "");
}

/// `parent`: the key `value` sits under. The entries of `callbacks` are names:
/// a callback whose policy is all defaults (`{}`) is still defined.
fn strip_defaults_in(value: &mut serde_json::Value, parent: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) if parent == "callbacks" => {
            for v in map.values_mut() {
                strip_defaults_in(v, "");
            }
        }
        Value::Object(map) => {
            map.retain(|k, v| match v {
                Value::Null => k == "file", // `"file": null` expects "no file"
                // `steps`, `jobs` (enum_jobs) and `files` (add_files) are required.
                Value::Array(a) => !a.is_empty() || ["steps", "jobs", "files"].contains(&k.as_str()),
                Value::Object(o) => !o.is_empty() || k == "plan",
                Value::Bool(b) => {
                    if k == "callback2" {
                        !*b
                    } else {
                        *b || k == "builtin_routes"
                    }
                }
                _ => true,
            });
            for (k, v) in map.iter_mut() {
                strip_defaults_in(v, k);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_defaults_in(v, parent)),
        _ => {}
    }
}

/// Keys in the order people write them (the format's field order, `op` first in a
/// step); the rest alphabetically. serde_json's map is sorted, so the order is ours.
const KEY_ORDER: &[&str] = &[
    "$schema",
    "description",
    "covers",
    "flavors",
    "seed",
    "users",
    "plan",
    "plan_file",
    "callbacks",
    "sim_only",
    "steps",
    "op",
    "job",
    "user",
    "type",
    "url",
    "local",
    "files",
    "callback",
    "value",
    "program",
    "parameters",
    "state",
    "states",
    "within",
    "by",
    "name",
    "size",
    "expect",
];

fn write_ordered(value: &serde_json::Value, depth: usize, out: &mut String) {
    use serde_json::Value;
    let pad = |out: &mut String, d: usize| (0..d).for_each(|_| out.push_str("  "));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<(usize, &str, &Value)> = map
                .iter()
                .map(|(k, v)| {
                    (
                        KEY_ORDER.iter().position(|o| o == k).unwrap_or(usize::MAX),
                        k.as_str(),
                        v,
                    )
                })
                .collect();
            keys.sort_unstable_by_key(|&(order, k, _)| (order, k));
            out.push_str("{\n");
            for (i, (_, k, v)) in keys.iter().enumerate() {
                pad(out, depth + 1);
                write_json_str(k, out);
                out.push_str(": ");
                write_ordered(v, depth + 1, out);
                out.push_str(if i + 1 < keys.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                write_ordered(item, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push(']');
        }
        Value::String(s) => write_json_str(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// A JSON string as serde_json writes it; text with nothing to escape (almost all of
/// it) is copied as it is.
fn write_json_str(s: &str, out: &mut String) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::Value::String(s.to_string()).to_string());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}
