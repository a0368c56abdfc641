//! A finished run as JUnit XML, so CI shows every step and every assert as a test case.
//!
//! One `<testsuite>` per job (in the order the run record first names it), one `<testcase>`
//! per step record: forEach items and nested workflow steps appear under the names the run
//! record gives them. The record is already redacted, so nothing here sees a secret.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::{RunRecord, StepRecord};

/// Why a JUnit report cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    /// The path names a directory.
    #[error("--junit {0}: is a directory; give a file path such as report.xml")]
    IsDirectory(PathBuf),
    /// The file (or its temporary sibling) cannot be created or renamed into place.
    #[error(
        "--junit {path}: cannot write the report: {source}; check that the directory exists and is writable"
    )]
    Io {
        /// The report's path.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// Checks, before a run starts, that a report can be written to `path` (by creating and
/// removing the temporary file the final write uses).
pub fn check_writable(path: &Path) -> Result<(), JunitError> {
    if path.is_dir() {
        return Err(JunitError::IsDirectory(path.to_path_buf()));
    }
    let temp = temp_path(path);
    let io = |source| JunitError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::File::create(&temp).map_err(io)?;
    std::fs::remove_file(&temp).map_err(io)
}

/// Writes `run` to `path` atomically: a temporary file beside it, then a rename.
pub fn write(path: &Path, run: &RunRecord) -> Result<(), JunitError> {
    if path.is_dir() {
        return Err(JunitError::IsDirectory(path.to_path_buf()));
    }
    let temp = temp_path(path);
    let io = |source| JunitError::Io {
        path: path.to_path_buf(),
        source,
    };
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(render(run).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "junit.xml".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// The JUnit XML text of a run.
pub fn render(run: &RunRecord) -> String {
    let mut jobs: Vec<(&str, Vec<&StepRecord>)> = Vec::new();
    for step in &run.steps {
        match jobs.iter_mut().find(|(job, _)| *job == step.job) {
            Some((_, steps)) => steps.push(step),
            None => jobs.push((&step.job, vec![step])),
        }
    }
    let count =
        |steps: &[&StepRecord], status: &str| steps.iter().filter(|s| s.status == status).count();
    let all: Vec<&StepRecord> = run.steps.iter().collect();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">\n",
        escape(&run.target),
        all.len(),
        count(&all, "failed"),
        count(&all, "skipped"),
        seconds(run.duration_ms),
    ));
    for (job, steps) in &jobs {
        let time: u64 = steps.iter().filter_map(|s| s.duration_ms).sum();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">\n",
            escape(job),
            steps.len(),
            count(steps, "failed"),
            count(steps, "skipped"),
            seconds(Some(time)),
            escape(&run.started_at),
        ));
        for step in steps {
            out.push_str(&testcase(run, job, step));
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn testcase(run: &RunRecord, job: &str, step: &StepRecord) -> String {
    let classname = format!("{}.{job}", run.target);
    let open = format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        escape(&step.name),
        escape(&classname),
        seconds(step.duration_ms),
    );
    let error = step.error.as_deref().unwrap_or("");
    let body = match step.status.as_str() {
        "failed" => {
            // An assert's failure message is its claim; any other step's is its error's
            // first line, with the whole error as the text.
            let message = step
                .assertion
                .clone()
                .unwrap_or_else(|| error.lines().next().unwrap_or("failed").to_string());
            let kind = if step.assertion.is_some() {
                "assert"
            } else {
                "step"
            };
            format!(
                "      <failure message=\"{}\" type=\"{kind}\">{}</failure>\n",
                escape(&message),
                escape(error)
            )
        }
        "skipped" => format!("      <skipped message=\"{}\"/>\n", escape(error)),
        _ => match &step.warning {
            Some(warning) => format!("      <system-out>{}</system-out>\n", escape(warning)),
            None => String::new(),
        },
    };
    if body.is_empty() {
        format!("{open}/>\n")
    } else {
        format!("{open}>\n{body}    </testcase>\n")
    }
}

fn seconds(ms: Option<u64>) -> String {
    let ms = ms.unwrap_or(0);
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Text safe in XML content and attributes; characters XML 1.0 cannot hold (most control
/// characters, such as a terminal escape in a plugin's error) are dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push_str(&format!("&#{};", c as u32)),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunStatus;

    fn step(job: &str, name: &str, status: &str) -> StepRecord {
        StepRecord {
            job: job.into(),
            name: name.into(),
            status: status.into(),
            duration_ms: Some(1500),
            ..Default::default()
        }
    }

    fn run(steps: Vec<StepRecord>) -> RunRecord {
        RunRecord {
            id: "r1".into(),
            kind: "workflow".into(),
            target: "checks".into(),
            status: RunStatus::Failed,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            duration_ms: Some(2250),
            inputs: serde_json::json!({}),
            steps,
            events: Vec::new(),
            error: None,
            owner: None,
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        }
    }

    #[test]
    fn one_suite_per_job_and_one_case_per_step_with_failures_skips_and_warnings() {
        let mut failed = step("a", "count", "failed");
        failed.assertion = Some("at least <3> VMs & \"more\"".into());
        failed.error = Some("assertion failed: x\u{1b}[31m".into());
        let mut warned = step("b", "soft", "succeeded");
        warned.warning = Some("only 1 VM".into());
        let mut skipped = step("a", "later", "skipped");
        skipped.error = Some("guard is false".into());
        let xml = render(&run(vec![failed, warned, skipped]));
        assert!(xml.contains("<testsuites name=\"checks\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"2.250\">"), "{xml}");
        assert!(
            xml.contains("<testsuite name=\"a\" tests=\"2\" failures=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("<testsuite name=\"b\" tests=\"1\" failures=\"0\""),
            "{xml}"
        );
        assert!(xml.contains("<failure message=\"at least &lt;3&gt; VMs &amp; &quot;more&quot;\" type=\"assert\">assertion failed: x[31m</failure>"), "{xml}");
        assert!(
            xml.contains("<skipped message=\"guard is false\"/>"),
            "{xml}"
        );
        assert!(xml.contains("<system-out>only 1 VM</system-out>"), "{xml}");
        assert!(
            xml.contains("name=\"count\" classname=\"checks.a\" time=\"1.500\""),
            "{xml}"
        );
    }

    #[test]
    fn report_replaces_the_file_atomically_and_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        std::fs::write(&path, "old").unwrap();
        check_writable(&path).unwrap();
        write(&path, &run(vec![step("a", "s", "succeeded")])).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("<testcase name=\"s\""), "{text}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "the temporary file is gone");
        let err = check_writable(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = check_writable(&dir.path().join("missing/report.xml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing/report.xml: cannot write the report"),
            "{err}"
        );
    }
}
