import Kernels
import Model

/// The resumable state of a training run: what an adapter file drops (the MLP or LSTM
/// prompt encoder, the trainable weights before any merge), plus the optimizer's tensors
/// and the step, so a run continues exactly where it stopped.
///
/// One safetensors file: `param.NAME` for each trainable parameter, `state.NAME` for each
/// extra tensor (optimizer moments), and string metadata (step, method, seed).
public enum TrainingCheckpoint {
    /// Writes `model`'s trainable parameters, `state` and `metadata` to `path`, atomically.
    public static func write(_ model: TunedModel, state: [(name: String, tensor: Tensor)] = [],
                             metadata: [String: String] = [:], to path: String) throws {
        let tensors = model.trainable.map { ("param." + $0.name, $0.value) } + state.map { ("state." + $0.name, $0.tensor) }
        try writeSafeTensors(tensors, metadata: metadata.merging(["format": "pt"]) { old, _ in old }, to: path)
    }

    /// Restores every trainable parameter of `model` from `path` and returns the stored
    /// extra tensors by name and the metadata. A missing or mis-shaped tensor is an error
    /// naming the file and the tensor; the model is then left unchanged.
    public static func read(_ path: String, into model: TunedModel) throws -> (state: [String: Tensor], metadata: [String: String]) {
        let file = try SafeTensorsFile(path: path)
        try file.read(model.trainable.map { ("param." + $0.name, $0) })
        var state: [String: Tensor] = [:]
        for name in file.names where name.hasPrefix("state.") { state[String(name.dropFirst(6))] = try file.tensor(name) }
        return (state, file.metadata)
    }
}
