import Model

/// IA3 (Liu et al. 2022): learned vectors that rescale chosen linear layers, ones at the start:
/// a feed-forward layer's inputs, any other layer's outputs (see `FeatureScaling`).
public final class IA3: TuningComponent {
    public let method: IA3Method
    /// Module paths that carry a vector, and whether each scales its input.
    public let modules: [(module: String, feedForward: Bool)]
    public let parameters: [Parameter]
    /// The base model's parameters of `modules_to_save`.
    public let unfrozen: [Parameter]

    public init(weights: BertWeights, method: IA3Method, kind: TaskKind) throws {
        self.method = method
        var registry = Parameters()
        var modules: [(String, Bool)] = []
        for (module, linear) in weights.linears where kind == .classification || !module.hasPrefix("pooler.") {
            let key = transformersName(module)
            guard try method.targets.matches(key, layers: nil, layersPattern: nil) else { continue }
            let feedForward = try method.isFeedForward(key)
            let vector = registry.make("\(module).ia3_l", feedForward ? [1, linear.inFeatures] : [linear.outFeatures, 1])
            vector.value.buffer.update(repeating: 1)
            linear.scaling = FeatureScaling(vector: vector, scalesInput: feedForward)
            modules.append((module, feedForward))
        }
        guard !modules.isEmpty else {
            throw InputError("--ia3-targets", "target modules \(method.targets.json) match no linear layer of the model")
        }
        self.modules = modules
        parameters = registry.all
        let wrapped = Set(modules.map(\.0))
        unfrozen = baseParameters(inModules: method.modulesToSave, weights: weights, kind: kind)
        if let clash = unfrozen.first(where: { wrapped.contains(moduleName(of: $0)) }) {
            throw InputError("--modules-to-save", "\(clash.name) is in a module IA3 rescales; a module is adapted or saved, not both")
        }
        for parameter in unfrozen { parameter.setTrainable(true) }
    }
}
