// Checks Groovy files without a Jenkins server, in one JVM run (Debian's groovy 2.4, the language level of
// Jenkins). Usage:
//   groovy groovy_check.groovy [--library DIR]... FILE...
// Every FILE is parsed at the CONVERSION phase (what Jenkins parses before running anything; `@Library`,
// imports and unknown steps do not matter there). A FILE holding a `pipeline { ... }` block also gets a
// structural check of the declarative pipeline: required sections, known directives, stages with exactly
// one of steps/stages/parallel/matrix, known post and when conditions, unique stage names.
// Each --library DIR (a shared library: src/ and vars/) is also compiled whole to class generation.
// Prints one JSON object per FILE or library: {"file", "ok", "errors", "pipeline", "stages"}; exits 1 if
// anything failed.
import groovy.json.JsonOutput
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassNode
import org.codehaus.groovy.ast.CodeVisitorSupport
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

class Rules {
    static final List PIPELINE = ['agent', 'environment', 'libraries', 'options', 'parameters', 'post', 'stages',
                                  'tools', 'triggers']
    static final List STAGE = ['agent', 'environment', 'failFast', 'input', 'matrix', 'options', 'parallel', 'post',
                               'stages', 'steps', 'tools', 'when']
    static final List BODIES = ['steps', 'stages', 'parallel', 'matrix']
    static final List POST = ['aborted', 'always', 'changed', 'cleanup', 'failure', 'fixed', 'notBuilt', 'regression',
                              'success', 'unstable', 'unsuccessful']
    static final List WHEN = ['allOf', 'anyOf', 'beforeAgent', 'beforeInput', 'beforeOptions', 'branch',
                              'buildingTag', 'changeRequest', 'changelog', 'changeset', 'environment', 'equals',
                              'expression', 'not', 'tag', 'triggeredBy']
    static final List INPUT = ['id', 'message', 'ok', 'parameters', 'submitter', 'submitterParameter']
    static final List AGENT = ['any', 'docker', 'dockerfile', 'kubernetes', 'label', 'node', 'none']
}

class DeclarativeChecker {
    String file
    List errors = []
    List stages = []
    Set stageNames = [] as Set

    void error(ASTNode node, String message) {
        errors << "${file}:${node.lineNumber}:${node.columnNumber}: ${message}".toString()
    }

    /** The method calls of a closure's body; anything else is reported. */
    List calls(ClosureExpression closure, String where, boolean assignmentsAllowed = false) {
        List found = []
        Statement code = closure.code
        List statements = code instanceof BlockStatement ? code.statements : [code]
        for (Statement statement : statements) {
            Expression expression = statement instanceof ExpressionStatement ? statement.expression : null
            if (expression instanceof MethodCallExpression && !expression.implicitThis) {
                error(statement, "one directive per line in ${where}: '${expression.text.take(60)}' chains several")
            } else if (expression instanceof MethodCallExpression) {
                found << expression
            } else if (!(assignmentsAllowed && expression instanceof BinaryExpression)) {
                error(statement, "unexpected statement in ${where}: only directives are allowed here")
            }
        }
        return found
    }

    static String name(MethodCallExpression call) { call.methodAsString }

    static List args(MethodCallExpression call) {
        call.arguments instanceof ArgumentListExpression ? call.arguments.expressions : []
    }

    static ClosureExpression block(MethodCallExpression call) {
        List list = args(call)
        return list && list[-1] instanceof ClosureExpression ? list[-1] : null
    }

    /** Known directives, each at most once; returns them by name. */
    Map directives(ClosureExpression closure, List allowed, String where) {
        Map seen = [:]
        for (MethodCallExpression call : calls(closure, where)) {
            String directive = name(call)
            if (!(directive in allowed)) {
                error(call, "unknown directive '${directive}' in ${where} (allowed: ${allowed.join(', ')})")
            } else if (seen.containsKey(directive)) {
                error(call, "'${directive}' appears twice in ${where}")
            } else {
                seen[directive] = call
            }
        }
        return seen
    }

    void checkPipeline(MethodCallExpression pipeline) {
        ClosureExpression body = block(pipeline)
        if (body == null) { error(pipeline, 'pipeline needs a { ... } block'); return }
        Map sections = directives(body, Rules.PIPELINE, 'pipeline')
        ['agent', 'stages'].each { if (!sections.containsKey(it)) { error(pipeline, "pipeline has no '${it}' section") } }
        if (sections.agent) { checkAgent(sections.agent, 'pipeline') }
        if (sections.stages) { checkStages(sections.stages, []) }
        if (sections.post) { checkPost(sections.post, 'pipeline') }
        if (sections.environment) { checkBlock(sections.environment, 'environment', true) }
    }

    ClosureExpression checkBlock(MethodCallExpression call, String where, boolean assignments = false) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "${where} needs a { ... } block") } else { calls(body, where, assignments) }
        return body
    }

    void checkAgent(MethodCallExpression call, String where) {
        List list = args(call)
        if (list.size() == 1 && list[0] instanceof VariableExpression && list[0].name in ['any', 'none']) { return }
        ClosureExpression body = block(call)
        if (body == null) { error(call, "agent in ${where} must be 'any', 'none' or a { ... } block"); return }
        Map kinds = directives(body, Rules.AGENT, "agent of ${where}")
        if (kinds.size() != 1) { error(call, "agent in ${where} needs exactly one of ${Rules.AGENT.join(', ')}") }
    }

    void checkStages(MethodCallExpression call, List path) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "stages needs a { ... } block"); return }
        List children = calls(body, 'stages')
        if (children.isEmpty()) { error(call, 'stages has no stage') }
        for (MethodCallExpression child : children) {
            if (name(child) == 'stage') { checkStage(child, path) } else { error(child, "only stage('...') { ... } may appear in stages, not '${name(child)}'") }
        }
    }

    void checkStage(MethodCallExpression call, List path) {
        List list = args(call)
        Expression label = list ? list[0] : null
        String title = label instanceof ConstantExpression ? label.value as String : (label instanceof GStringExpression ? label.text : null)
        ClosureExpression body = block(call)
        if (title == null || body == null || list.size() != 2) { error(call, "a stage is written stage('Name') { ... }"); return }
        if (!stageNames.add(title)) { error(call, "stage name '${title}' is used twice") }
        String where = "stage '${title}'"
        Map parts = directives(body, Rules.STAGE, where)
        List bodies = Rules.BODIES.findAll { parts.containsKey(it) }
        if (bodies.size() != 1) { error(call, "${where} needs exactly one of steps, stages, parallel, matrix (has ${bodies ? bodies.join(', ') : 'none'})") }
        List here = path + [title]
        stages << [name: title, path: here, leaf: parts.containsKey('steps'), line: call.lineNumber]
        if (parts.steps) { checkSteps(parts.steps, where) }
        if (parts.stages) { checkStages(parts.stages, here) }
        if (parts.parallel) { checkStages(parts.parallel, here) }
        if (parts.agent) { checkAgent(parts.agent, where) }
        if (parts.when) { checkWhen(parts.when, where) }
        if (parts.input) { checkInput(parts.input, where) }
        if (parts.post) { checkPost(parts.post, where) }
        if (parts.options) { checkBlock(parts.options, "options of ${where}") }
        if (parts.environment) { checkBlock(parts.environment, "environment of ${where}", true) }
    }

    void checkSteps(MethodCallExpression call, String where) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "steps of ${where} needs a { ... } block"); return }
        Statement code = body.code
        if (code instanceof BlockStatement && code.statements.isEmpty()) { error(call, "steps of ${where} is empty") }
    }

    void checkWhen(MethodCallExpression call, String where) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "when of ${where} needs a { ... } block"); return }
        for (MethodCallExpression condition : calls(body, "when of ${where}")) {
            String kind = name(condition)
            if (!(kind in Rules.WHEN)) {
                error(condition, "unknown when condition '${kind}' in ${where} (allowed: ${Rules.WHEN.join(', ')})")
            } else if (kind in ['allOf', 'anyOf', 'not']) {
                checkWhen(condition, where)
            }
        }
    }

    void checkInput(MethodCallExpression call, String where) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "input of ${where} needs a { ... } block"); return }
        Map fields = directives(body, Rules.INPUT, "input of ${where}")
        if (!fields.containsKey('message')) { error(call, "input of ${where} has no message") }
    }

    void checkPost(MethodCallExpression call, String where) {
        ClosureExpression body = block(call)
        if (body == null) { error(call, "post of ${where} needs a { ... } block"); return }
        Map conditions = directives(body, Rules.POST, "post of ${where}")
        conditions.each { String condition, MethodCallExpression branch ->
            if (block(branch) == null) { error(branch, "post condition '${condition}' of ${where} needs a { ... } block") }
        }
    }
}

class PipelineFinder extends CodeVisitorSupport {
    List found = []

    @Override
    void visitMethodCallExpression(MethodCallExpression call) {
        if (call.methodAsString == 'pipeline' && DeclarativeChecker.block(call) != null) { found << call; return }
        super.visitMethodCallExpression(call)
    }

    static List find(ModuleNode module) {
        PipelineFinder finder = new PipelineFinder()  // the script's body is its class's run() method
        for (ClassNode type : module.classes) {
            type.methods.each { if (it.code) { it.code.visit(finder) } }
        }
        return finder.found
    }
}

List syntaxErrors(CompilationFailedException failure) {
    failure.errorCollector.errors.collect { message ->
        if (message instanceof SyntaxErrorMessage) {
            def cause = message.cause
            return "${cause.sourceLocator}:${cause.line}:${cause.startColumn}: ${cause.originalMessage}".toString()
        }
        StringWriter text = new StringWriter()
        message.write(new PrintWriter(text))
        return text.toString().trim()
    }
}

Map checkFile(File file) {
    Map report = [file: file.path, ok: true, errors: [], pipeline: false, stages: []]
    CompilationUnit unit = new CompilationUnit()
    def source = unit.addSource(file)
    try {
        unit.compile(Phases.CONVERSION)
    } catch (CompilationFailedException failure) {
        report.errors = syntaxErrors(failure)
        report.ok = false
        return report
    }
    for (MethodCallExpression pipeline : PipelineFinder.find(source.AST)) {
        DeclarativeChecker checker = new DeclarativeChecker(file: file.path)
        checker.checkPipeline(pipeline)
        report.pipeline = true
        report.stages += checker.stages
        report.errors += checker.errors
    }
    report.ok = report.errors.isEmpty()
    return report
}

Map compileLibrary(File root) {
    Map report = [file: root.path, ok: true, errors: [], pipeline: false, stages: []]
    File target = File.createTempDir('groovy-check', '')
    CompilerConfiguration configuration = new CompilerConfiguration(targetDirectory: target)
    CompilationUnit unit = new CompilationUnit(configuration)
    ['src', 'vars'].each { folder ->
        File base = new File(root, folder)
        if (base.isDirectory()) { base.eachFileRecurse { if (it.name.endsWith('.groovy')) { unit.addSource(it) } } }
    }
    try {
        unit.compile(Phases.CLASS_GENERATION)
    } catch (CompilationFailedException failure) {
        report.errors = syntaxErrors(failure)
        report.ok = false
    } finally {
        target.deleteDir()
    }
    return report
}

List libraries = []
List files = []
for (int i = 0; i < args.length; i++) {
    if (args[i] == '--library' && i + 1 < args.length) { libraries << new File(args[++i]) } else { files << new File(args[i]) }
}
if (!files && !libraries) {
    System.err.println('usage: groovy groovy_check.groovy [--library DIR]... FILE...')
    System.exit(2)
}
boolean allOk = true
(files.collect { checkFile(it) } + libraries.collect { compileLibrary(it) }).each { report ->
    allOk = allOk && report.ok
    println(JsonOutput.toJson(report))
}
System.exit(allOk ? 0 : 1)
