import ArgumentParser
import Foundation
import Kernels
import Model
import Tasks
import Training
import Tuning

/// The model shapes `bench` times: the checkpoint's, or BERT-base's and BERT-large's with random weights.
enum BenchConfig: String, ExpressibleByArgument, CaseIterable {
    case checkpoint, bertBase = "bert-base", bertLarge = "bert-large"

    /// BERT's published shapes (uncased vocabulary, 512 positions).
    var config: BertConfig? {
        switch self {
        case .checkpoint: return nil
        case .bertBase: return BertConfig(vocabSize: 30522, hiddenSize: 768, layers: 12, heads: 12, intermediateSize: 3072)
        case .bertLarge: return BertConfig(vocabSize: 30522, hiddenSize: 1024, layers: 24, heads: 16, intermediateSize: 4096)
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time full training steps (forward, backward, AdamW) of a method on fixed random tokens, as the Python peer does.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var method: MethodOptions
    @OptionGroup var precision: PrecisionOptions
    @Option(help: "Model shape: the checkpoint's, or bert-base / bert-large with random weights (as the peer takes them).")
    var config = BenchConfig.checkpoint
    @Option(help: "Sequences per step.") var batchSize = 32
    @Option(help: "Tokens per sequence.") var maxLength = 128
    @Option(help: "Timed steps (after two warm-up steps).") var steps = 6
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Keep the frozen layers' outputs from the first step and skip those layers after it (as epochs after the first do with `train --cache-frozen-layers`).")
    var cacheFrozenLayers = false

    func validate() throws {
        guard batchSize > 0, maxLength > 1, steps > 0 else {
            throw ValidationError("--batch-size, --max-length and --steps must be positive (--max-length at least 2)")
        }
    }

    func run() throws {
        let chosen = try precision.apply()
        let spec = try method.spec()
        let weights: BertWeights
        if let shape = config.config {
            weights = BertWeights(config: shape)
            var random = SplitMix(seed: 7)
            for parameter in weights.parameters.all where parameter.shape.count == 2 {
                for i in 0..<parameter.value.count { parameter.value[i] = 0.02 * random.normal() }
            }
        } else {
            weights = try PretrainedModel(folder: model.folder).weights
        }
        let components = try spec.components(weights: weights, seed: 0)
        let tuned = TunedModel(weights: weights, components: components,
                               head: TaskHead(kind: .classification, labels: 2, hiddenSize: weights.config.hiddenSize,
                                              dropout: weights.config.headDropout, seed: 0))
        try tuned.checkFits(maxLength: maxLength, option: "--max-length")
        // The step `train` takes, at the peer's rate; it clips at 1 too, a pass the peer's step leaves out.
        let trainingStep = TrainingStep(model: tuned, optimizer: AdamW(parameters: tuned.trainable),
                                        maxGradNorm: 1, paddingId: 0)
        let frozenCache = cacheFrozenLayers ? FrozenOutputCache() : nil
        // Full-length sequences of random tokens (no padding), random labels.
        var random = SplitMix(seed: 1)
        let examples = (0..<batchSize).map { _ in
            let ids = (0..<maxLength).map { _ in Int32.random(in: 1000..<30000, using: &random) }
            return EncodedExample(inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: maxLength),
                                  labels: [Int32.random(in: 0..<2, using: &random)])
        }
        let clock = ContinuousClock()
        var optimizerSeconds = 0.0
        func step(_ index: Int) {
            let outcome = trainingStep.run(examples, kind: .classification, members: Array(examples.indices),
                                           lr: 1e-3, dropoutSeed: UInt64(index), frozenCache: frozenCache)
            optimizerSeconds += outcome.optimizerSeconds
        }
        step(0); step(1)
        WorkCounter.reset()
        MatrixEngine.resetLargest()
        optimizerSeconds = 0
        let start = clock.now
        for index in 0..<steps { step(index + 2) }
        let seconds = (clock.now - start).seconds / Double(steps)
        let operations = WorkCounter.operations / Double(steps)
        // Peak memory of the steps, read (as the Python peer reads it) before the measurement below allocates its operands.
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let largest = MatrixEngine.largestProduct
        let peak = MatrixEngine.measureLargestProduct() ?? 0
        let share = { (part: Double) in part / Double(steps) / seconds }
        let breakdown = [
            "products": share(WorkCounter.productSeconds - WorkCounter.roundingSeconds),
            "bf16_rounding": share(WorkCounter.roundingSeconds), "attention_elementwise": share(WorkCounter.attentionSeconds),
            "optimizer": share(optimizerSeconds), "communication": 0,
        ]
        let rest = 1 - breakdown.values.reduce(0, +)
        let result: [String: Any] = [
            "method": spec.name, "config": config.rawValue, "precision": chosen.rawValue, "trainable": tuned.trainableCount,
            "batch": batchSize, "seq": maxLength, "tokens_per_s": Double(batchSize * maxLength) / seconds, "step_ms": seconds * 1000,
            "gflop_per_step": operations / 1e9, "achieved_gflops": operations / seconds / 1e9,
            "largest_product": largest?.implementation ?? "none", "peak_gflops": peak,
            "fraction_of_peak": operations / seconds / 1e9 / peak, "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
            "threads": Parallelism.threads, "step_shares": breakdown.merging(["elementwise_and_other": rest]) { $1 },
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@ %@ %@ tokens_per_s=%.0f step_ms=%.1f gflop/step=%.1f achieved=%.1f GFLOP/s peak=%.1f GFLOP/s (%.0f%%, %@) peak_rss_mb=%.0f trainable=%d",
                         spec.name, config.rawValue, chosen.rawValue, result["tokens_per_s"] as! Double, seconds * 1000,
                         operations / 1e9, operations / seconds / 1e9, peak, 100 * operations / seconds / 1e9 / peak,
                         largest?.implementation ?? "none", Double(usage.ru_maxrss) / 1024, tuned.trainableCount))
            print(String(format: "  step: products %.0f%%, bf16 rounding of their inputs %.0f%%, attention softmax/dropout %.0f%%, optimizer %.0f%%, other element-wise %.0f%%, communication 0%% (one process)",
                         100 * breakdown["products"]!, 100 * breakdown["bf16_rounding"]!, 100 * breakdown["attention_elementwise"]!, 100 * breakdown["optimizer"]!,
                         100 * rest))
        }
    }
}
