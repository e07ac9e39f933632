package io.tornado.jenkins

/**
 * Glue between Jenkins and the `tornado` CLI: every stage runs `tornado pipeline step <stage>`, so the
 * stage's logic lives in Tornado's tested Python code (tornado_core/toolchain/pipeline.py), the same code that
 * `tornado pipeline run --local` runs on a developer's machine.
 */
class TornadoCli implements Serializable {
    private static final long serialVersionUID = 1L

    private final def steps
    private final PipelineConfig config

    TornadoCli(def steps, PipelineConfig config) {
        this.steps = steps
        this.config = config
    }

    /** Checks out the commit and runs one stage of the pipeline with the tornado CLI. */
    void run(String stage) {
        steps.checkout(steps.scm)
        String venv = "${steps.env.WORKSPACE}/.tornado-venv"
        steps.withEnv(["TORNADO_CORE_VERSION=${config.tornadoVersion}", "TORNADO_VENV=${venv}"]) {
            steps.sh(script: steps.libraryResource('io/tornado/jenkins/setup-tornado.sh'), label: 'tornado CLI')
        }
        // Strict mode: the project's tests fail (not skip) when a service is missing.
        steps.withEnv(["PATH+TORNADO=${venv}/bin", "TORNADO_STRICT=1"]) {
            steps.sh(script: "tornado pipeline step ${stage} ${config.cliOptions()}", label: "tornado: ${stage}")
        }
    }

    /** After a failed or aborted release build: route back and retire the new version, under the lock. */
    void rollback(String branch) {
        if (!config.releases(branch)) {
            steps.echo("${branch} does not release ${config.task}: nothing to roll back")
            return
        }
        steps.node(config.agentLabel) {
            steps.lock(resource: config.lockName()) {
                run('rollback')
            }
        }
    }
}
