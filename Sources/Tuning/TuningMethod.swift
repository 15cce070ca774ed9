import Foundation
import Kernels
import Model

/// A tuning method with its settings: what a user chooses on the command line, what a run's
/// config keeps, what builds the components, and how its adapters are written and read in
/// PEFT's format. Each method lives in its own folder; `TuningMethods.all` lists them.
public protocol TuningMethod: Sendable {
    /// The command-line name (`--method`), and the `method` field of a run's config.
    static var name: String { get }
    /// One line for `--help`.
    static var summary: String { get }
    /// The `peft_type` values of adapter configs this method reads.
    static var peftTypes: [String] { get }
    /// The peak learning rate that suits the method on a small BERT.
    static var defaultLearningRate: Float { get }

    /// Settings from flat fields, keyed as `settings` writes them (a run's config, or the
    /// command line's options under the same names).
    init(settings: JSONFields) throws
    var settings: [String: Any] { get }

    /// Checks every number against the model before anything is sized by it; errors name the option.
    func validate(config: BertConfig) throws
    /// Positions of the encoder's table taken before the first real token (a prompt's).
    var positionsBeforeTokens: Int { get }
    /// Builds the components on `weights` for a task of `kind`, drawing initial values from `seed`.
    func components(weights: BertWeights, kind: TaskKind, seed: UInt64) throws -> [TuningComponent]

    /// The adapter of `model` (built by this method) as PEFT writes it.
    func peftAdapter(of model: TunedModel) throws -> PeftAdapterContent
    /// Reads an adapter whose `peft_type` is one of `peftTypes` onto `weights`.
    static func read(peft: PeftAdapterSource, weights: BertWeights, kind: TaskKind) throws -> PeftAdapterLoaded
}

extension TuningMethod {
    public var positionsBeforeTokens: Int { 0 }
    public var name: String { Self.name }
}

/// Every tuning method PTune trains and reads, in the order `--help` lists them.
public enum TuningMethods {
    public static let all: [any TuningMethod.Type] = [
        PTuningV2.self, PrefixTuning.self, PTuningV1.self, PromptTuningMethod.self, LoRAMethod.self, IA3Method.self,
        FreezeMethod.self, FullFineTuningMethod.self,
    ]

    public static var names: [String] { all.map { $0.name } }

    /// The method called `name`; the error names `source` (the option, or a run's config file).
    public static func named(_ name: String, source: String = "--method") throws -> any TuningMethod.Type {
        guard let method = all.first(where: { $0.name == name }) else {
            throw InputError(source, "unknown method '\(name)' (one of: \(names.joined(separator: ", ")))")
        }
        return method
    }
}

/// A chosen method and its settings, comparable and storable: the value training settings,
/// adapters and benchmarks pass around.
public struct MethodSpec: Equatable, @unchecked Sendable {
    public let method: any TuningMethod

    public init(_ method: any TuningMethod) {
        self.method = method
    }

    /// The method called `name` with `settings` (keys as its `settings` writes them).
    public init(name: String, settings: JSONFields) throws {
        self.init(try TuningMethods.named(name).init(settings: settings))
    }

    public var name: String { method.name }

    public func components(weights: BertWeights, kind: TaskKind = .classification, seed: UInt64) throws
        -> [TuningComponent] {
        try method.validate(config: weights.config)
        return try method.components(weights: weights, kind: kind, seed: seed)
    }

    public func validate(config: BertConfig) throws { try method.validate(config: config) }
    public var positionsBeforeTokens: Int { method.positionsBeforeTokens }
    public var defaultLearningRate: Float { type(of: method).defaultLearningRate }

    /// The method as a JSON object (for a run's resolved config): its name and settings.
    public var json: [String: Any] { method.settings.merging(["method": name]) { $1 } }

    /// Reads what `json` wrote; errors name `source` and the field.
    public init(json: [String: Any], source: String) throws {
        let fields = JSONFields(json, source: source)
        self.init(try TuningMethods.named(try fields.string("method"), source: source).init(settings: fields))
    }

    public static func == (lhs: MethodSpec, rhs: MethodSpec) -> Bool {
        NSDictionary(dictionary: lhs.json).isEqual(to: rhs.json)
    }

    /// The most hidden units a prompt encoder may have: far past any useful size, well short of
    /// an allocation that fails.
    public static let maxEncoderWidth = 65_536
}

/// Checks shared by the methods' `validate`: each error names the command-line option.
enum SettingCheck {
    static func require(_ holds: Bool, _ option: String, _ problem: @autoclosure () -> String) throws {
        if !holds { throw InputError(option, problem()) }
    }

    static func rate(_ value: Float, _ option: String) throws {
        try require((0..<1).contains(value), option, "must be in [0, 1), not \(value)")
    }

    static func width(_ value: Int, _ option: String) throws {
        try require((1...MethodSpec.maxEncoderWidth).contains(value), option,
                    "must be within 1...\(MethodSpec.maxEncoderWidth), not \(value)")
    }

    /// A prompt of `length` positions: [CLS] and [SEP] need positions after it.
    static func promptLength(_ length: Int, config: BertConfig) throws {
        let room = config.maxPositions - 2
        try require((1...max(room, 1)).contains(length), "--prompt-length",
                    "must be within 1...\(room) (the model has \(config.maxPositions) positions), not \(length)")
    }
}
