import Kernels
import Model

/// A tuning method and its settings: what a user chooses on the command line and
/// what an adapter's config describes.
public enum MethodSpec: Equatable, Sendable {
    /// P-tuning v2: deep prompts of `length` vectors at every layer, trained directly, dropout on them.
    case ptv2(length: Int, dropout: Float, positionOffset: Int?)
    /// Prefix tuning: deep prompts produced by an MLP of `hidden` units.
    case prefix(length: Int, hidden: Int, positionOffset: Int?)
    /// P-tuning v1: `length` virtual input tokens produced by an LSTM or MLP prompt encoder.
    case ptv1(length: Int, encoder: PromptReparameterization)
    /// LoRA of rank r on the `targets` modules.
    case lora(rank: Int, alpha: Float, dropout: Float, targets: [String])
    /// Freeze tuning: `modules` of the last `layers` layers train.
    case freeze(layers: Int, modules: FreezeModules)
    /// Full fine-tuning, the baseline.
    case full

    /// The command-line name.
    public var name: String {
        switch self {
        case .ptv2: "ptv2"
        case .prefix: "prefix"
        case .ptv1: "ptv1"
        case .lora: "lora"
        case .freeze: "freeze"
        case .full: "full"
        }
    }

    /// Builds the method's components on `weights`, drawing initial values from `seed`.
    public func components(weights: BertWeights, seed: UInt64) throws -> [TuningComponent] {
        let config = weights.config
        func initialized(_ prompt: PromptTuning) -> PromptTuning {
            var random = SplitMix(seed: seed)
            prompt.initialize(using: &random)
            return prompt
        }
        switch self {
        case let .ptv2(length, dropout, offset):
            return [initialized(PromptTuning(placement: .keyValues, reparameterization: .none(dropout: dropout),
                                             length: length, config: config, positionOffset: offset))]
        case let .prefix(length, hidden, offset):
            return [initialized(PromptTuning(placement: .keyValues, reparameterization: .prefixMLP(hidden: hidden),
                                             length: length, config: config, positionOffset: offset))]
        case let .ptv1(length, encoder):
            return [initialized(PromptTuning(placement: .input, reparameterization: encoder, length: length, config: config))]
        case let .lora(rank, alpha, dropout, targets):
            return [try LoRA(weights: weights, rank: rank, alpha: alpha, dropout: dropout, targets: targets, seed: seed)]
        case let .freeze(layers, modules):
            return [try FreezeTuning(weights: weights, lastLayers: layers, modules: modules)]
        case .full:
            return [FullFineTuning(weights: weights)]
        }
    }
}
