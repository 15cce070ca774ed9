import Foundation
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

/// PEFT's config fields that hold module names, layer indices and per-module numbers; errors name
/// the field.
enum PeftFields {
    /// `layers_to_transform`: one index or a list.
    static func layers(_ value: Any?, field: String, source: String) throws -> [Int]? {
        switch value {
        case nil: return nil
        case let number as NSNumber where Int(exactly: number.doubleValue) != nil: return [number.intValue]
        case let list as [Int]: return list
        default: throw InputError(source, "field '\(field)' must be a layer index or a list of them")
        }
    }

    /// One name or a list of them (`layers_pattern`, `modules_to_save`).
    static func strings(_ value: Any?, field: String, source: String) throws -> [String]? {
        switch value {
        case nil: return nil
        case let one as String: return [one]
        case let list as [String]: return list
        default: throw InputError(source, "field '\(field)' must be a string or a list of strings")
        }
    }

    /// A pattern → number object, each value converted by `convert`.
    static func numbers<Value>(_ value: Any?, field: String, source: String, _ convert: (Any) -> Value?) throws
        -> [String: Value] {
        guard let value, !(value is NSNull) else { return [:] }
        guard let object = value as? [String: Any] else { throw InputError(source, "field '\(field)' must be an object") }
        return try object.mapValues { raw in
            guard let converted = convert(raw) else { throw InputError(source, "field '\(field)' holds \(raw), not a number") }
            return converted
        }
    }

    /// `rank_pattern`: module pattern → rank.
    static func ranks(_ value: Any?, field: String, source: String) throws -> [String: Int] {
        try numbers(value, field: field, source: source) { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
    }

    /// `alpha_pattern`: module pattern → alpha.
    static func alphas(_ value: Any?, field: String, source: String) throws -> [String: Float] {
        try numbers(value, field: field, source: source) { ($0 as? NSNumber).map { Float($0.doubleValue) } }
    }

    /// A saved config's `modules_to_save` without the task head's modules, which PEFT appends and
    /// PTune saves as the head.
    static func savedBaseModules(_ config: JSONFields, source: String) throws -> [String] {
        withoutHeadModules(try strings(config.json["modules_to_save"], field: "modules_to_save", source: source) ?? [])
    }
}

/// The task head's module names, which PEFT puts in `modules_to_save` (`score` for other models).
func withoutHeadModules(_ names: [String]) -> [String] { names.filter { $0 != "classifier" && $0 != "score" } }

/// The module path a parameter belongs to (`encoder.layer.0.attention.self.query` for its `.bias`).
func moduleName(of parameter: Parameter) -> String {
    parameter.name.split(separator: ".").dropLast().joined(separator: ".")
}

/// Transformers' module name of a PTune parameter's module path.
func transformersName(_ module: String) -> String { "bert." + module }

/// PEFT's `modules_to_save` on the base model: every parameter inside a module whose transformers
/// name ends with one of `names` (PEFT's test, with no dot: `pooler` names `bert.pooler`). The
/// classifier is the task head's and always saved. The pooler exists only with a classification head.
func baseParameters(inModules names: [String], weights: BertWeights, kind: TaskKind) -> [Parameter] {
    let names = withoutHeadModules(names)
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
    let module = moduleName(of: parameter)
    let leaf = parameter.name.split(separator: ".").last.map(String.init) ?? parameter.name
    return "base_model.model." + transformersName(wrapped.contains(module) ? "\(module).base_layer.\(leaf)" : parameter.name)
}
