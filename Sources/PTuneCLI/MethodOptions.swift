import ArgumentParser
import Tuning

extension FreezeModules: ExpressibleByArgument {}

/// The method and its settings, as every command that builds a tuned model takes them.
struct MethodOptions: ParsableArguments {
    enum Name: String, ExpressibleByArgument, CaseIterable {
        case ptv2, prefix, ptv1, lora, freeze, full
    }
    enum PromptEncoder: String, ExpressibleByArgument, CaseIterable {
        case lstm, mlp
    }

    @Option(help: "Tuning method: \(Name.allCases.map(\.rawValue).joined(separator: ", ")).")
    var method: Name?

    @Option(help: "Prompt length P (ptv2, prefix, ptv1).")
    var promptLength = 16

    @Option(help: "Dropout on the deep prompt in training (ptv2).")
    var promptDropout: Float = 0.1

    @Option(help: "First position id of the real tokens with deep prompts (ptv2, prefix); default P, as PEFT and transformers do.")
    var positionOffset: Int?

    @Option(help: "Hidden units of prefix tuning's MLP.")
    var prefixHidden = 384

    @Option(help: "P-tuning v1's prompt encoder: lstm or mlp.")
    var promptEncoder: PromptEncoder = .lstm

    @Option(help: "Hidden units of P-tuning v1's prompt encoder.")
    var encoderHidden = 128

    @Option(help: "LSTM layers of P-tuning v1's prompt encoder.")
    var encoderLayers = 2

    @Option(help: "LoRA rank r.")
    var loraR = 8

    @Option(help: "LoRA alpha (the update is scaled by alpha / r).")
    var loraAlpha: Float = 16

    @Option(help: "Dropout on LoRA's input in training.")
    var loraDropout: Float = 0.1

    @Option(help: "Comma-separated linear layers LoRA adapts: query, key, value, attention.output.dense, intermediate.dense, output.dense, pooler.dense, or dense (all four dense layers).")
    var loraTargets = "query,value"

    @Option(help: "Freeze tuning: how many of the last layers train.")
    var freezeLayers = 2

    @Option(help: "Freeze tuning: which modules of those layers train: ff, attention, all.")
    var freezeModules: FreezeModules = .ff

    /// The chosen method with its settings; `--method` is required wherever this is read.
    func spec() throws -> MethodSpec {
        guard let method else { throw ValidationError("--method is required") }
        return switch method {
        case .ptv2: .ptv2(length: promptLength, dropout: promptDropout, positionOffset: positionOffset)
        case .prefix: .prefix(length: promptLength, hidden: prefixHidden, positionOffset: positionOffset)
        case .ptv1:
            .ptv1(length: promptLength, encoder: promptEncoder == .lstm
                  ? .lstm(hidden: encoderHidden, layers: encoderLayers) : .mlp(hidden: encoderHidden))
        case .lora:
            .lora(rank: loraR, alpha: loraAlpha, dropout: loraDropout,
                  targets: loraTargets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        case .freeze: .freeze(layers: freezeLayers, modules: freezeModules)
        case .full: .full
        }
    }

    func validate() throws {
        guard promptLength > 0 else { throw ValidationError("--prompt-length must be positive") }
        guard (0..<1).contains(promptDropout), (0..<1).contains(loraDropout) else {
            throw ValidationError("dropout rates must be in [0, 1)")
        }
    }
}
