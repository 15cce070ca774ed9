import ArgumentParser
import Foundation
import Kernels
import Model
import Tasks

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode lines of standard input; write one JSON object a line with pooler_output and cls (the [CLS] hidden state).")

    @OptionGroup var model: ModelOptions

    @OptionGroup var inference: InferenceOptions
    @OptionGroup var precision: PrecisionOptions

    @Flag(help: "Print throughput to standard error: sentences/s, tokens/s, the encoder's GFLOP/s and this process's cblas_sgemm GFLOP/s on a 2048×384×1536 product.")
    var report = false

    func run() throws {
        try precision.apply(announce: false)
        let pretrained = try PretrainedModel(folder: model.folder)
        guard inference.maxLength <= pretrained.config.maxPositions else {
            throw InputError("--max-length", "must be at most the model's \(pretrained.config.maxPositions) positions, not \(inference.maxLength)")
        }
        let encoder = BertEncoder(weights: pretrained.weights)
        let texts = try TextFile.standardInputLines().map(String.init)
        let encodings = texts.map { pretrained.tokenizer.encode($0, maxLength: inference.maxLength) }

        // Batches of similar length waste little on padding; longest first, so the encoder's
        // buffers are planned once for the largest batch. Outputs go back in input order.
        let order = encodings.indices.sorted { encodings[$0].inputIds.count > encodings[$1].inputIds.count }
        var lines = [String](repeating: "", count: texts.count)
        var tokens = 0
        WorkCounter.reset()
        let clock = ContinuousClock()
        let start = clock.now
        for chunk in stride(from: 0, to: order.count, by: inference.batchSize) {
            let members = Array(order[chunk..<min(chunk + inference.batchSize, order.count)])
            let batch = TokenBatch(encodings: members.map { encodings[$0] }, paddingId: pretrained.tokenizer.paddingId)
            let output = encoder.forward(batch, forBackward: false, positions: .first)   // [CLS] and pooler only
            tokens += batch.tokenCount
            for (b, index) in members.enumerated() {
                let (pooled, cls) = (output.pooledOutput(b), output.hidden(b, 0))
                guard (pooled + cls).allSatisfy(\.isFinite) else {
                    throw InputError(model.folder, "the model computes non-finite values (NaN or infinity) for input line "
                                     + "\(index + 1); its weights are broken")
                }
                lines[index] = "{\"pooler_output\":\(jsonArray(pooled)),\"cls\":\(jsonArray(cls))}"
            }
        }
        let seconds = (clock.now - start).seconds
        for line in lines { print(line) }
        if report {
            let peak = MatrixEngine.measure(m: 2048, n: 1536, k: 384)
            let achieved = WorkCounter.operations / seconds / 1e9
            let message = String(
                format: "encoded %d sentences (%d tokens) in %.2f s: %.1f sentences/s, %.0f tokens/s; encoder %.1f GFLOP/s, %@ matmul 2048x384x1536 %.1f GFLOP/s (%.0f%% of it)\n",
                texts.count, tokens, seconds, Double(texts.count) / seconds, Double(tokens) / seconds,
                achieved, MatrixEngine.precision.rawValue, peak, 100 * achieved / peak)
            FileHandle.standardError.write(message.data(using: .utf8)!)
        }
    }
}
