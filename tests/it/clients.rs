//! Clients generated from the served OpenAPI document work: openapi-python-client (PyPI) and
//! openapi-typescript with openapi-fetch (npm) each generate from `/api/v1/openapi.json` without a
//! warning, and a script per language (tests/clients/) then uses the generated code against the
//! running system: a location and an employee, a clock-in and -out, the daily report and the
//! monthly summary, pages of employees, and a 422 and a 429 through the generated error type.
//! `deploy/local/test.sh` installs the pinned generators and names them in `CLOKIO_CLIENT_PY` and
//! `CLOKIO_CLIENT_TS`; without those the test says so and does nothing. Every command is bounded
//! in time.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clokio_bus::types::Plan;
use clokio_tests::{Gateway, Stack};

/// `timeout 180 <program> <args>` in `dir` with `env`, on a blocking thread (the stack keeps
/// serving on the test's runtime meanwhile).
async fn run(dir: &Path, program: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=10")
        .arg("180")
        .arg(program)
        .args(args)
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!("{} {}", program.display(), args.join(" "));
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the command succeeded and said nothing about warnings.
fn clean(out: &Output, what: &str) -> String {
    let said = text(out);
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\n{said}",
        out.status
    );
    assert!(
        !said.to_lowercase().contains("warn"),
        "{what} warned about the document:\n{said}"
    );
    said
}

/// The script's environment: a tenant's key, the key of an org limited to 5 requests a minute
/// (for the 429), and the org's date today.
async fn script_env(stack: &Stack, gw: &Gateway) -> Vec<(&'static str, String)> {
    let t = stack.tenant(gw, Plan::Enterprise).await;
    let limited = stack.create_org(Plan::Enterprise, Some(5), "UTC").await;
    let limited_key = stack.create_key(limited.id).await;
    vec![
        ("CLOKIO_URL", gw.url.clone()),
        ("CLOKIO_API_KEY", t.key),
        ("CLOKIO_LIMITED_KEY", limited_key),
        (
            "CLOKIO_TODAY",
            chrono::Utc::now()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
        ),
    ]
}

/// A scratch directory holding the served document as `openapi.json`.
async fn with_document(gw: &Gateway, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clokio-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = gw
        .client
        .get(format!("{}/api/v1/openapi.json", gw.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.join("openapi.json"), doc).unwrap();
    dir
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_works_against_the_system() {
    let Ok(venv) = std::env::var("CLOKIO_CLIENT_PY") else {
        eprintln!("CLOKIO_CLIENT_PY is not set (deploy/local/test.sh sets it): not generating");
        return;
    };
    let venv = PathBuf::from(venv);
    let (stack, gw) = Stack::start().await;
    let dir = with_document(&gw, "python-client").await;
    // ruff (which the generator formats with) is found on PATH.
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(
        &dir,
        &venv.join("bin/openapi-python-client"),
        &[
            "generate",
            "--path",
            "openapi.json",
            "--output-path",
            "clokio_client",
            "--meta",
            "none",
        ],
        &[("PATH", path)],
    )
    .await;
    clean(&out, "openapi-python-client generate");
    let mut env = script_env(&stack, &gw).await;
    env.push(("PYTHONPATH", dir.display().to_string()));
    let script = scripts().join("python/exercise.py");
    let out = run(
        &dir,
        &venv.join("bin/python"),
        &[script.to_str().unwrap()],
        &env,
    )
    .await;
    let said = clean(&out, "the Python client script");
    assert!(said.contains("python client: ok"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_typescript_types_work_against_the_system() {
    let Ok(tools) = std::env::var("CLOKIO_CLIENT_TS") else {
        eprintln!("CLOKIO_CLIENT_TS is not set (deploy/local/test.sh sets it): not generating");
        return;
    };
    let modules = PathBuf::from(tools).join("node_modules");
    let (stack, gw) = Stack::start().await;
    let dir = with_document(&gw, "typescript-client").await;
    for file in ["exercise.ts", "tsconfig.json", "package.json"] {
        std::fs::copy(scripts().join("typescript").join(file), dir.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&modules, dir.join("node_modules")).unwrap();
    let out = run(
        &dir,
        &modules.join(".bin/openapi-typescript"),
        &["openapi.json", "-o", "schema.d.ts"],
        &[],
    )
    .await;
    clean(&out, "openapi-typescript");
    // Strict type checking of the script against the generated types, then the calls.
    let out = run(&dir, &modules.join(".bin/tsc"), &["-p", "."], &[]).await;
    clean(&out, "tsc");
    let env = script_env(&stack, &gw).await;
    let out = run(&dir, Path::new("node"), &["out/exercise.js"], &env).await;
    let said = clean(&out, "the TypeScript client script");
    assert!(said.contains("typescript client: ok"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
