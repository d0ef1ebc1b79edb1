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

/// The Slurm files: `array.sbatch` (one task per shard, requeued on preemption or node loss),
/// `merge.sbatch`, and `submit.sh` that chains them with `--dependency=afterok`.
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
         exec {jb} study --resume {dir} --shard \"${{SLURM_ARRAY_TASK_ID}}/{n}\"\n",
        n = o.shards,
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
         # Submit the shard array, then the merge job once every shard succeeded.\n\
         set -euo pipefail\n\
         here=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\n\
         mkdir -p {dir}/slurm\n\
         array=$(sbatch --parsable \"$here/array.sbatch\")\n\
         array=${{array%%;*}}\n\
         merge=$(sbatch --parsable --dependency=afterok:\"$array\" \"$here/merge.sbatch\")\n\
         echo \"submitted shard array $array ({n} tasks) and merge job ${{merge%%;*}}\"\n",
        n = o.shards,
    );
    Ok(vec![
        ("array.sbatch".into(), array),
        ("merge.sbatch".into(), merge),
        ("submit.sh".into(), submit),
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
        "exec {} study --resume {} --shard \"$JOB_COMPLETION_INDEX/{}\"",
        sh_quote(&o.jukebox),
        sh_quote(study_in_pod),
        o.shards
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
