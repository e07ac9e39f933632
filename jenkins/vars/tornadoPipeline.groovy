import io.tornado.jenkins.PipelineConfig
import io.tornado.jenkins.TornadoCli

/**
 * The release pipeline of a Tornado task project; a Jenkinsfile needs only
 *
 *     @Library('tornado-pipeline@v1') _
 *     tornadoPipeline(task: 'nfe.cancel')
 *
 * Every stage runs `tornado pipeline step <stage>`: the logic lives in Tornado's Python code and
 * `tornado pipeline run --local` runs the same stages on a developer's machine. The stage names
 * below are checked against tornado_core/toolchain/pipeline.py by Tornado's tests.
 */
def call(Map settings = [:]) {
    PipelineConfig cfg = PipelineConfig.from(settings)
    TornadoCli tornado = new TornadoCli(this, cfg)

    pipeline {
        agent none
        options {
            skipDefaultCheckout()
            timestamps()
            buildDiscarder(logRotator(numToKeepStr: '30'))
            timeout(time: 3, unit: 'HOURS')
        }
        environment {
            TORNADO_TASK = "${cfg.task}"
            TORNADO_LOG_LEVEL = 'INFO'
        }
        stages {
            stage('Build') {
                agent { label "${cfg.agentLabel}" }
                stages {
                    stage('Checkout') {
                        steps { script { tornado.run('checkout') } }
                    }
                    stage('Test') {
                        steps { script { tornado.run('test') } }
                    }
                    stage('Build image') {
                        steps { script { tornado.run('build-image') } }
                    }
                    stage('Push image') {
                        when { expression { return cfg.releases(env.BRANCH_NAME) } }
                        steps { script { tornado.run('push-image') } }
                    }
                }
            }
            stage('Release') {
                when {
                    beforeAgent true
                    expression { return cfg.releases(env.BRANCH_NAME) }
                }
                options { lock(resource: "tornado-release-${cfg.task}") }
                stages {
                    stage('Deploy') {
                        agent { label "${cfg.agentLabel}" }
                        steps { script { tornado.run('deploy') } }
                    }
                    stage('Smoke test') {
                        agent { label "${cfg.agentLabel}" }
                        steps { script { tornado.run('smoke') } }
                    }
                    stage('Approve') {
                        when {
                            beforeInput true
                            branch 'main'
                        }
                        options { timeout(time: 1, unit: 'HOURS') }
                        input {
                            message "Send every new ${cfg.task} job to the new version?"
                            ok 'Promote'
                            submitter "${cfg.approvers}"
                        }
                        steps { milestone(label: "${cfg.task} approved") }
                    }
                    stage('Promote') {
                        agent { label "${cfg.agentLabel}" }
                        steps { script { tornado.run('promote') } }
                    }
                    stage('Retire old version') {
                        agent { label "${cfg.agentLabel}" }
                        steps { script { tornado.run('retire-old') } }
                    }
                }
            }
        }
        post {
            failure { script { tornado.rollback(env.BRANCH_NAME) } }
            aborted { script { tornado.rollback(env.BRANCH_NAME) } }
        }
    }
}
