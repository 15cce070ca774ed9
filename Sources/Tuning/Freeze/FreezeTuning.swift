import Model

/// Which modules of a layer Freeze tuning unfreezes.
public enum FreezeModules: String, CaseIterable, Sendable {
    /// The feed-forward block's two linear layers.
    case ff
    /// The self-attention projections and output.
    case attention
    /// Every weight of the layer, LayerNorms included.
    case all
}

/// Freeze tuning: only the chosen modules of the last N layers train; backward then stops
/// at the lowest of them. With N = all layers and `.all` modules plus the embeddings and pooler,
/// it is full fine-tuning (`FullFineTuning`).
public final class FreezeTuning: TuningComponent {
    public let lastLayers: Int
    public let modules: FreezeModules
    public let parameters: [Parameter] = []
    /// The base model's parameters this method makes trainable.
    public let unfrozen: [Parameter]

    public init(weights: BertWeights, lastLayers: Int, modules: FreezeModules) throws {
        let count = weights.layers.count
        guard lastLayers > 0 && lastLayers <= count else {
            throw InputError("freeze", "last layers must be within 1...\(count), not \(lastLayers)")
        }
        self.lastLayers = lastLayers
        self.modules = modules
        unfrozen = weights.layers.suffix(lastLayers).flatMap { layer -> [Parameter] in
            let linears: [Linear]
            switch modules {
            case .ff: linears = [layer.intermediate, layer.output]
            case .attention: linears = [layer.query, layer.key, layer.value, layer.attentionOutput]
            case .all:
                linears = layer.linears.map(\.linear)
            }
            let norms = modules == .all ? [layer.attentionNorm, layer.outputNorm] : []
            return linears.flatMap { [$0.weight, $0.bias] } + norms.flatMap { [$0.weight, $0.bias] }
        }
        for parameter in unfrozen { parameter.setTrainable(true) }
    }
}
