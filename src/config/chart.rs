//! The Helm chart keeps up with the knobs: every flag `switchboard serve
//! --help` lists is set by the chart (a key of the config file its
//! `_config.tpl` renders, a `SWITCHBOARD_*` variable or an argument of the
//! server container in `_pod.tpl`), or [`NOT_SET_BY_THE_CHART`] says why not.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::CommandFactory;

use super::Knobs;

/// `serve` flags the chart does not set, each with the reason. A new flag
/// goes into the chart's values and `_config.tpl`, or here.
const NOT_SET_BY_THE_CHART: &[(&str, &str)] = &[
    ("check-config", "a mode (validate, print, exit), not a setting of a running server"),
    ("nats-user", "the chart mounts the Secret key as a file named by `nats_user_file`"),
    (
        "nats-password",
        "a secret: the chart mounts it as a file named by `nats_password_file`, never an environment variable",
    ),
    ("nats-token", "a secret: the chart mounts it as a file named by `nats_token_file`, never an environment variable"),
    (
        "nats-stream",
        "JetStream naming keeps the server's default; a second release on the same NATS sets \
         SWITCHBOARD_NATS_STREAM through `extraEnv`",
    ),
    (
        "nats-subject-prefix",
        "JetStream naming keeps the server's default; `extraEnv` can set SWITCHBOARD_NATS_SUBJECT_PREFIX",
    ),
    (
        "nats-duplicate-window",
        "broker tuning the chart leaves at the server's default; `extraEnv` can set SWITCHBOARD_NATS_DUPLICATE_WINDOW",
    ),
    (
        "nats-max-bytes",
        "broker tuning the chart leaves at the server's default; `extraEnv` can set SWITCHBOARD_NATS_MAX_BYTES",
    ),
    (
        "nats-request-timeout",
        "broker tuning the chart leaves at the server's default; `extraEnv` can set SWITCHBOARD_NATS_REQUEST_TIMEOUT",
    ),
    (
        "otlp-endpoint",
        "needs the `otlp` cargo feature, which the image the chart deploys (Dockerfile) is built without",
    ),
    #[cfg(feature = "bench")]
    ("enable-bench-service", "benchmark baselines only; a deployment must not serve them"),
];

fn template(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("helm/switchboard/templates").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The keys the chart's config file renders (`key = …` lines of the
/// `switchboard.configToml` template).
fn rendered_file_keys() -> BTreeSet<String> {
    let text = template("_config.tpl");
    let start = text.find(r#"define "switchboard.configToml""#).expect("_config.tpl defines switchboard.configToml");
    let body = &text[start..];
    let body = &body[..body.find("{{/*").unwrap_or(body.len())];
    body.lines()
        .filter_map(|line| line.trim().split_once(" = "))
        .map(|(key, _)| key)
        .filter(|key| !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

/// The `SWITCHBOARD_*` names and the `--flags` of the server container.
fn pod_env_and_args() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = template("_pod.tpl");
    let env = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("SWITCHBOARD_") && word.len() > "SWITCHBOARD_".len())
        .map(str::to_owned)
        .collect();
    let args = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- --"))
        .map(|flag| flag.split(|c: char| c.is_whitespace() || c == '=').next().unwrap_or_default().to_owned())
        .collect();
    (env, args)
}

/// Every flag of `switchboard serve`, with its environment twin.
fn serve_flags() -> Vec<(String, Option<String>)> {
    let cli = crate::cli::Cli::command();
    let serve = cli.find_subcommand("serve").expect("switchboard has a serve command");
    serve
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            (long != "help").then(|| (long.to_owned(), env))
        })
        .collect()
}

#[test]
fn every_serve_flag_is_set_by_the_chart_or_excluded_with_a_reason() {
    let keys = rendered_file_keys();
    let (env, args) = pod_env_and_args();
    let set_by_chart = |flag: &str, twin: Option<&str>| {
        keys.contains(&flag.replace('-', "_")) || twin.is_some_and(|t| env.contains(t)) || args.contains(flag)
    };
    let excluded = |flag: &str| NOT_SET_BY_THE_CHART.iter().any(|(f, _)| *f == flag);

    let flags = serve_flags();
    let unhandled: Vec<_> = flags
        .iter()
        .filter(|(flag, twin)| !set_by_chart(flag, twin.as_deref()) && !excluded(flag))
        .map(|(flag, _)| format!("--{flag}"))
        .collect();
    assert!(
        unhandled.is_empty(),
        "`switchboard serve` has flags the Helm chart can neither set nor explicitly excludes: {unhandled:?}. \
         Add a value to helm/switchboard/values.yaml and render it in templates/_config.tpl, or add the flag \
         with a reason to NOT_SET_BY_THE_CHART in src/config/chart.rs."
    );

    for (flag, reason) in NOT_SET_BY_THE_CHART {
        assert!(!reason.trim().is_empty(), "--{flag} is excluded without a reason");
        let Some((_, twin)) = flags.iter().find(|(f, _)| f == flag) else {
            panic!("NOT_SET_BY_THE_CHART names --{flag}, which `switchboard serve` does not have");
        };
        assert!(!set_by_chart(flag, twin.as_deref()), "the chart sets --{flag}; remove it from NOT_SET_BY_THE_CHART");
    }
}

#[test]
fn the_chart_config_file_renders_only_keys_the_server_accepts() {
    let accepted: BTreeSet<_> =
        Knobs::declared().into_iter().map(|(key, _)| key.to_owned()).chain(["tokens".to_owned()]).collect();
    let rendered = rendered_file_keys();
    assert!(rendered.len() > 20, "the key scan of _config.tpl found only {rendered:?}");
    let unknown: Vec<_> = rendered.difference(&accepted).collect();
    assert!(unknown.is_empty(), "_config.tpl renders keys the server refuses: {unknown:?}");
}
