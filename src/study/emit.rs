//! Cluster recipes for a sharded study: a Slurm job array with a dependent merge job, and a
//! Kubernetes Indexed Job with a merge Job. The scheduler does the scheduling; each task runs
//! `jukebox study --resume STUDY --shard i/n`, which skips finished groups, so a requeued or
//! restarted task resumes where it stopped.

use super::plan::Plan;
use anyhow::{bail, Result};
use std::path::Path;

/// Resources and names for emitted jobs.
#[derive(Clone, Debug)]
pub struct EmitOptions {
    pub shards: usize,
    pub cpus: usize,
    pub mem_gb: usize,
    pub gpus: usize,
    /// Wall-time limit per shard in minutes (default: from the plan's estimate).
    pub minutes: Option<u64>,
    /// The `jukebox` command on the nodes.
    pub jukebox: String,
    /// Container image (Kubernetes).
    pub image: String,
    /// PersistentVolumeClaim that holds the study directory (Kubernetes).
    pub pvc: String,
    pub job_name: String,
    /// Extra flags for every shard's `jukebox study` (e.g. `--no-rank`, `--fake-runner`).
    pub shard_flags: Vec<String>,
}

impl Default for EmitOptions {
    fn default() -> Self {
        Self {
            shards: 4,
            cpus: 2,
            mem_gb: 8,
            gpus: 0,
            minutes: None,
            jukebox: "jukebox".into(),
            image: "jukebox-rs:latest".into(),
            pvc: "jukebox-study".into(),
            job_name: "jukebox-study".into(),
            shard_flags: vec![],
        }
    }
}

fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Minutes per shard: twice the estimate of the largest shard, plus 15 minutes, at least 30.
pub fn default_minutes(
    plan: &Plan,
    shards: usize,
    tokens_per_second: &dyn Fn(usize) -> f64,
) -> u64 {
    let total = plan.estimate_seconds(tokens_per_second);
    let groups = plan.groups.len().max(1) as f64;
    // The largest shard holds ceil(groups / shards) groups.
    let per_shard = total * (groups / shards.max(1) as f64).ceil() / groups;
    ((2.0 * per_shard / 60.0).ceil() as u64 + 15).max(30)
}

fn check(plan: &Plan, o: &EmitOptions) -> Result<()> {
    if o.shards == 0 {
        bail!("--emit needs at least one shard (--shards N)");
    }
    if o.shards > plan.groups.len() {
        bail!(
            "--shards {} is more than the plan's {} batch groups; use at most {}",
            o.shards,
            plan.groups.len(),
            plan.groups.len()
        );
    }
    Ok(())
}

/// ` --flag --flag` for the shard command line (empty when there are none).
fn flags(o: &EmitOptions) -> String {
    o.shard_flags
        .iter()
        .map(|f| format!(" {}", sh_quote(f)))
        .collect()
}

/// The Slurm files: `array.sbatch` (one task per shard, requeued on preemption or node loss),
/// `merge.sbatch`, `submit.sh` that chains them with one `afterok` per array task, and
/// `rerun.sh` that requeues cancelled, failed or timed-out tasks and re-arms the merge job.
///
/// The merge job depends on each task (`afterok:A_0:A_1:…`), not on the whole array
/// (`afterok:A`): Slurm keeps the worst exit code of an array's tasks even after a task is
/// requeued and succeeds, so a whole-array dependency never clears after a rerun. A dependency on
/// a cancelled task is marked never satisfiable and Slurm does not look at it again, which is why
/// `rerun.sh` sets the merge job's dependency anew.
pub fn slurm(
    plan: &Plan,
    study: &Path,
    o: &EmitOptions,
    minutes: u64,
) -> Result<Vec<(String, String)>> {
    check(plan, o)?;
    let dir = sh_quote(&study.display().to_string());
    let jb = sh_quote(&o.jukebox);
    let time = format!("{:02}:{:02}:00", minutes / 60, minutes % 60);
    let gres = if o.gpus > 0 {
        format!("#SBATCH --gres=gpu:{}\n", o.gpus)
    } else {
        String::new()
    };
    let array = format!(
        "#!/bin/bash\n\
         # One task per shard of the study's batch groups (g % {n} == task id).\n\
         # A killed task is requeued and resumes: finished groups are never recomputed.\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --array=0-{last}\n\
         #SBATCH --cpus-per-task={cpus}\n\
         #SBATCH --mem={mem}G\n\
         #SBATCH --time={time}\n\
         #SBATCH --requeue\n\
         #SBATCH --open-mode=append\n\
         #SBATCH --output={out}/slurm/shard_%a.log\n\
         {gres}\
         set -euo pipefail\n\
         # Use the CPUs Slurm gave the task, not every core of the node.\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         exec {jb} study --resume {dir} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\"{extra}\n",
        n = o.shards,
        extra = flags(o),
        name = o.job_name,
        last = o.shards - 1,
        cpus = o.cpus,
        mem = o.mem_gb,
        out = study.display(),
    );
    let merge = format!(
        "#!/bin/bash\n\
         # Joins the shard folders and renders metrics.csv, claims.csv and index.html.\n\
         #SBATCH --job-name={name}-merge\n\
         #SBATCH --cpus-per-task=1\n\
         #SBATCH --mem=4G\n\
         #SBATCH --time=00:30:00\n\
         #SBATCH --output={out}/slurm/merge.log\n\
         set -euo pipefail\n\
         exec {jb} study merge {dir}\n",
        name = o.job_name,
        out = study.display(),
    );
    let submit = format!(
        "#!/bin/bash\n\
         # Submit the shard array, then the merge job once every shard task succeeded.\n\
         # The job ids go to jobs.env, which rerun.sh reads.\n\
         set -euo pipefail\n\
         here=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\n\
         mkdir -p {dir}/slurm\n\
         array=$(sbatch --parsable \"$here/array.sbatch\")\n\
         array=${{array%%;*}}\n\
         # One afterok per task, so that a requeued task counts by its last run.\n\
         tasks=\"\"\n\
         for i in $(seq 0 {last}); do tasks=\"$tasks${{tasks:+:}}${{array}}_$i\"; done\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$tasks\" \"$here/merge.sbatch\")\n\
         merge=${{merge%%;*}}\n\
         printf 'ARRAY=%s\\nMERGE=%s\\nTASKS=%s\\n' \"$array\" \"$merge\" \"$tasks\" > \"$here/jobs.env.tmp\"\n\
         mv \"$here/jobs.env.tmp\" \"$here/jobs.env\"\n\
         echo \"submitted shard array $array ({n} tasks) and merge job $merge\"\n",
        n = o.shards,
        last = o.shards - 1,
    );
    let rerun = format!(
        "#!/bin/bash\n\
         # Rerun shard tasks of the submitted array (after scancel, a time limit, a failure):\n\
         # requeue each one, make it eligible now, and re-arm the merge job, whose dependency on a\n\
         # cancelled or failed task Slurm has marked as never satisfiable. A rerun task resumes:\n\
         # finished groups are never recomputed.\n\
         # usage: rerun.sh SHARD...   (shard = array task id, 0..{last})\n\
         set -euo pipefail\n\
         here=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\n\
         [ $# -gt 0 ] || {{ echo \"usage: $0 SHARD... (0..{last})\" >&2; exit 2; }}\n\
         . \"$here/jobs.env\"\n\
         state() {{ scontrol -o show job \"$1\" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2 || true; }}\n\
         for t in \"$@\"; do\n\
         \x20 case $t in ''|*[!0-9]*) echo \"rerun.sh: shard $t is not a number\" >&2; exit 2;; esac\n\
         \x20 id=\"${{ARRAY}}_$t\"\n\
         \x20 for _ in $(seq 1 120); do [ \"$(state \"$id\")\" = COMPLETING ] || break; sleep 0.5; done\n\
         \x20 s=$(state \"$id\")\n\
         \x20 case $s in\n\
         \x20   PENDING|REQUEUED|RUNNING|CONFIGURING) echo \"shard $t ($id) is $s already\";;\n\
         \x20   '')\n\
         \x20     # Slurm has forgotten the task (MinJobAge): submit it again on its own.\n\
         \x20     new=$(sbatch --parsable --array=\"$t\" \"$here/array.sbatch\"); new=${{new%%;*}}\n\
         \x20     TASKS=$(echo \"$TASKS\" | tr ':' '\\n' | sed \"s/^${{ARRAY}}_$t\\$/${{new}}_$t/\" | paste -sd:)\n\
         \x20     echo \"shard $t resubmitted as ${{new}}_$t\";;\n\
         \x20   *)\n\
         \x20     scontrol requeue \"$id\"\n\
         \x20     for _ in $(seq 1 120); do [ \"$(state \"$id\")\" = PENDING ] && break; sleep 0.5; done\n\
         \x20     scontrol update JobId=\"$id\" StartTime=now\n\
         \x20     echo \"shard $t ($id, was $s) requeued\";;\n\
         \x20 esac\n\
         done\n\
         if [ \"$(state \"$MERGE\")\" = PENDING ]; then\n\
         \x20 scontrol update JobId=\"$MERGE\" Dependency=afterok:\"$TASKS\"\n\
         else\n\
         \x20 MERGE=$(sbatch --parsable --dependency=afterok:\"$TASKS\" \"$here/merge.sbatch\"); MERGE=${{MERGE%%;*}}\n\
         fi\n\
         printf 'ARRAY=%s\\nMERGE=%s\\nTASKS=%s\\n' \"$ARRAY\" \"$MERGE\" \"$TASKS\" > \"$here/jobs.env.tmp\"\n\
         mv \"$here/jobs.env.tmp\" \"$here/jobs.env\"\n\
         echo \"merge job $MERGE waits on $TASKS\"\n",
        last = o.shards - 1,
    );
    Ok(vec![
        ("array.sbatch".into(), array),
        ("merge.sbatch".into(), merge),
        ("submit.sh".into(), submit),
        ("rerun.sh".into(), rerun),
    ])
}

/// The Kubernetes manifests (JSON, which `kubectl apply -f` accepts): an Indexed Job whose
/// completion index is the shard, and a merge Job to apply once it completes.
pub fn k8s(
    plan: &Plan,
    study_in_pod: &str,
    o: &EmitOptions,
    minutes: u64,
) -> Result<Vec<(String, String)>> {
    check(plan, o)?;
    let mut limits =
        serde_json::json!({"cpu": o.cpus.to_string(), "memory": format!("{}Gi", o.mem_gb)});
    if o.gpus > 0 {
        limits["nvidia.com/gpu"] = serde_json::json!(o.gpus.to_string());
    }
    let volume =
        serde_json::json!([{"name": "study", "persistentVolumeClaim": {"claimName": o.pvc}}]);
    let mount = serde_json::json!([{"name": "study", "mountPath": study_in_pod}]);
    let shard_cmd = format!(
        "exec {} study --resume {} --shard \"$JOB_COMPLETION_INDEX/{}\"{}",
        sh_quote(&o.jukebox),
        sh_quote(study_in_pod),
        o.shards,
        flags(o)
    );
    let job = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": o.job_name, "labels": {"app": "jukebox-study"}},
        "spec": {
            "completionMode": "Indexed",
            "completions": o.shards,
            "parallelism": o.shards,
            "backoffLimitPerIndex": 3,
            "activeDeadlineSeconds": minutes * 60 * 2,
            "template": {
                "metadata": {"labels": {"app": "jukebox-study"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "shard",
                        "image": o.image,
                        "command": ["sh", "-c", shard_cmd],
                        "resources": {"requests": limits.clone(), "limits": limits},
                        "volumeMounts": mount.clone()
                    }],
                    "volumes": volume.clone()
                }
            }
        }
    });
    let merge = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("{}-merge", o.job_name), "labels": {"app": "jukebox-study"}},
        "spec": {
            "completions": 1,
            "backoffLimit": 2,
            "template": {
                "metadata": {"labels": {"app": "jukebox-study"}},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "merge",
                        "image": o.image,
                        "command": [o.jukebox, "study", "merge", study_in_pod],
                        "resources": {"requests": {"cpu": "1", "memory": "4Gi"}},
                        "volumeMounts": mount
                    }],
                    "volumes": volume
                }
            }
        }
    });
    let run = format!(
        "#!/bin/sh\n# Run the shards as an Indexed Job, wait for it, then merge.\nset -eu\n\
         here=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\n\
         kubectl apply -f \"$here/study-job.json\"\n\
         kubectl wait --for=condition=complete --timeout={}s job/{}\n\
         kubectl apply -f \"$here/merge-job.json\"\n",
        minutes * 60 * 2,
        o.job_name
    );
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).map(|s| s + "\n");
    Ok(vec![
        ("study-job.json".into(), pretty(&job)?),
        ("merge-job.json".into(), pretty(&merge)?),
        ("run.sh".into(), run),
    ])
}
