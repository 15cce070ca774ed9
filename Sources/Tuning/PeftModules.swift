import Model

/// PEFT's rules for which of the model's modules a config names, applied to transformers' module
/// names (`bert.encoder.layer.0.attention.self.query`, `bert.pooler`, `classifier`): PTune's names
/// with `bert.` in front.
public enum PeftTargets: Equatable, Sendable {
    /// A list: a module matches a name it equals or ends with after a dot.
    case list([String])
    /// A string: a regular expression the whole module name must match.
    case regex(String)

    /// Reads `target_modules`-like fields: a string is a regular expression, a list a list.
    init(_ value: Any?, field: String, source: String) throws {
        switch value {
        case let pattern as String: self = .regex(pattern)
        case let names as [String]: self = .list(names)
        default: throw InputError(source, "field '\(field)' must be a list of module names or a regular expression")
        }
    }

    var json: Any {
        switch self {
        case let .list(names): names
        case let .regex(pattern): pattern
        }
    }

    /// PEFT's `check_target_module_exists`: `layers` (`layers_to_transform`) narrows the suffix
    /// matches of a list to the modules under those layer indices, found after `layersPattern`
    /// (`layers_pattern`: `layer` here) or after any `.name.N.`; regex and exact matches are not narrowed.
    func matches(_ key: String, layers: [Int]?, layersPattern: [String]?) throws -> Bool {
        switch self {
        case let .regex(pattern):
            return try key.wholeMatch(of: Self.regex(pattern, field: "target_modules")) != nil
        case let .list(names):
            if names.contains(key) { return true }
            guard names.contains(where: { key.hasSuffix("." + $0) }) else { return false }
            guard let layers, !layers.isEmpty else { return true }
            let patterns = (layersPattern ?? []).isEmpty ? ["[^.]*"] : layersPattern!
            for pattern in patterns {
                let layerRegex = try Self.regex(".*\\.\(pattern)\\.(\\d+)\\.", field: "layers_pattern")
                if let match = try layerRegex.prefixMatch(in: key), let digits = match.output[1].substring {
                    return Int(digits).map(layers.contains) ?? false
                }
            }
            return false
        }
    }

    static func regex(_ pattern: String, field: String) throws -> Regex<AnyRegexOutput> {
        do {
            return try Regex(pattern)
        } catch {
            throw InputError(field, "'\(pattern)' is not a regular expression this reader understands (\(error))")
        }
    }
}

/// Transformers' module name of a PTune parameter's module path.
func transformersName(_ module: String) -> String { "bert." + module }

/// PEFT's `modules_to_save` on the base model: every parameter inside a module whose transformers
/// name ends with one of `names` (PEFT's test, with no dot: `pooler` names `bert.pooler`). The
/// classifier is the task head's and always saved. The pooler exists only with a classification head.
func baseParameters(inModules names: [String], weights: BertWeights, kind: TaskKind) -> [Parameter] {
    let names = names.filter { $0 != "classifier" && $0 != "score" }
    guard !names.isEmpty else { return [] }
    return weights.parameters.all.filter { parameter in
        guard kind == .classification || !parameter.name.hasPrefix("pooler.") else { return false }
        let parts = parameter.name.split(separator: ".")
        // The enclosing modules: `bert`, `bert.encoder`, …, `bert.encoder.layer.0.output.dense`.
        return (0..<parts.count).contains { depth in
            let module = (["bert"] + parts.prefix(depth)).joined(separator: ".")
            return names.contains { module.hasSuffix($0) }
        }
    }
}

/// The base model's tensors a LoRA or IA3 adapter carries (biases, `modules_to_save`), as PEFT
/// names them: a bias of a layer that PEFT wrapped sits under `base_layer`.
func peftBaseTensorName(_ parameter: Parameter, wrapped: Set<String>) -> String {
    let module = parameter.name.split(separator: ".").dropLast().joined(separator: ".")
    let leaf = parameter.name.split(separator: ".").last.map(String.init) ?? parameter.name
    return "base_model.model." + transformersName(wrapped.contains(module) ? "\(module).base_layer.\(leaf)" : parameter.name)
}
