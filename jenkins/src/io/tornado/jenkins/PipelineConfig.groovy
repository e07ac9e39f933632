package io.tornado.jenkins

/**
 * The settings of one task's pipeline, checked once before the pipeline starts.
 *
 * Only values that end up on a `tornado` command line live here, and each is checked against a strict
 * pattern, so nothing a Jenkinsfile passes can inject shell syntax.
 */
class PipelineConfig implements Serializable {
    private static final long serialVersionUID = 1L

    static final String TASK = /[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+/
    static final List STRATEGIES = ['bluegreen', 'canary']
    static final List RUNTIMES = ['ecs', 'docker', 'process']

    String task
    String strategy = 'bluegreen'
    String canarySteps = '10,50,100'
    String maxErrorRate = '2'
    String runtime = 'ecs'
    String registry = ''
    String replicas = '2'
    String agentLabel = 'docker'
    String approvers = ''
    List releaseBranches = ['main']
    String tornadoVersion = ''

    /** Builds and checks the settings from the map given to tornadoPipeline(...). */
    static PipelineConfig from(Map raw) {
        PipelineConfig config = new PipelineConfig()
        for (String key : raw.keySet()) {
            if (!config.hasProperty(key) || key == 'class') {
                throw new IllegalArgumentException("tornadoPipeline: unknown setting '${key}'")
            }
            config.setProperty(key, raw[key] instanceof List ? raw[key] : String.valueOf(raw[key]))
        }
        config.check()
        return config
    }

    void check() {
        require(task != null && task ==~ TASK, 'task', "a dotted lower-case task name such as 'nfe.cancel'")
        require(strategy in STRATEGIES, 'strategy', STRATEGIES.join(' or '))
        require(runtime in RUNTIMES, 'runtime', RUNTIMES.join(', '))
        require(canarySteps ==~ /\d{1,3}(,\d{1,3})*/, 'canarySteps', "percentages such as '10,50,100'")
        require(maxErrorRate ==~ /\d+(\.\d+)?/, 'maxErrorRate', 'a percentage such as 2 or 0.5')
        require(replicas ==~ /[1-9]\d{0,2}/, 'replicas', 'a number of workers from 1 to 999')
        require(registry ==~ /[A-Za-z0-9.\-:\/]*/, 'registry', 'a registry host such as 1234.dkr.ecr.sa-east-1.amazonaws.com')
        require(tornadoVersion ==~ /[0-9A-Za-z.\-+]*/, 'tornadoVersion', 'a version such as 0.1.0')
        require(agentLabel ==~ /[A-Za-z0-9_\-&|! ]+/, 'agentLabel', 'a Jenkins label expression')
    }

    private static void require(boolean ok, String key, String expected) {
        if (!ok) {
            throw new IllegalArgumentException("tornadoPipeline: '${key}' must be ${expected}")
        }
    }

    /** Whether a build of this branch releases (deploys) the task. */
    boolean releases(String branch) {
        return branch != null && releaseBranches.contains(branch)
    }

    /** The lockable resource that lets one release of this task run at a time. */
    String lockName() {
        return "tornado-release-${task}"
    }

    /** The options every `tornado pipeline step` call gets. */
    String cliOptions() {
        String options = "--project . --target jenkins --runtime ${runtime} --replicas ${replicas}" +
            " --strategy ${strategy} --canary-steps ${canarySteps} --max-error-rate ${maxErrorRate}"
        return registry ? "${options} --registry ${registry}" : options
    }
}
