import ArgumentParser
import Foundation
import Kernels
import Model
import Training
import Tuning

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time full training steps (forward, backward, AdamW) of a method on fixed random tokens, as the Python peer does.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var method: MethodOptions
    @Option(help: "Sequences per step.") var batch = 32
    @Option(help: "Tokens per sequence.") var seq = 128
    @Option(help: "Timed steps (after two warm-up steps).") var steps = 6
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Keep the frozen layers' outputs from the first step and skip those layers after it (as epochs after the first do with `train --cache-frozen-layers`).")
    var cacheFrozenLayers = false

    func run() throws {
        let spec = try method.spec()
        let pretrained = try PretrainedModel(folder: model.folder)
        let components = try spec.components(weights: pretrained.weights, seed: 0)
        let tuned = TunedModel(weights: pretrained.weights, components: components,
                               head: TaskHead(kind: .classification, labels: 2, hiddenSize: pretrained.config.hiddenSize,
                                              dropout: pretrained.config.hiddenDropout, seed: 0))
        let optimizer = AdamW(parameters: tuned.trainable)
        let frozenCache = cacheFrozenLayers ? FrozenOutputCache() : nil
        var random = SplitMix(seed: 1)
        let ids = (0..<(batch * seq)).map { _ in Int32.random(in: 1000..<30000, using: &random) }
        let tokens = TokenBatch(batch: batch, length: seq, inputIds: ids, tokenTypeIds: [Int32](repeating: 0, count: batch * seq),
                                attentionMask: [Float](repeating: 1, count: batch * seq))
        let labels = (0..<batch).map { _ in Int32.random(in: 0..<2, using: &random) }
        func step(_ index: Int) {
            tuned.parameters.zeroGradients()
            tuned.forward(tokens, dropoutSeed: UInt64(index), frozenCache: frozenCache)
            _ = tuned.loss(labels: labels)
            tuned.backward(labels: labels)
            optimizer.update(lr: 1e-3, gradientScale: gradientClipping(tuned.trainable, maxNorm: 1).factor)
        }
        step(0); step(1)
        WorkCounter.reset()
        let clock = ContinuousClock(), start = clock.now
        for index in 0..<steps { step(index + 2) }
        let seconds = (clock.now - start).seconds / Double(steps)
        let operations = WorkCounter.operations / Double(steps)
        // Peak memory of the steps, read (as the Python peer reads it) before the measurement below allocates its matrices.
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        // The step's largest product: the feed-forward layer, (B·T, C) · (C, F).
        let peak = measureSgemmGFLOPS(m: batch * seq, n: pretrained.config.intermediateSize, k: pretrained.config.hiddenSize)
        let result: [String: Any] = [
            "method": spec.name, "trainable": tuned.trainableCount, "batch": batch, "seq": seq,
            "tokens_per_s": Double(batch * seq) / seconds, "step_ms": seconds * 1000, "gflop_per_step": operations / 1e9,
            "achieved_gflops": operations / seconds / 1e9, "sgemm_gflops": peak,
            "fraction_of_sgemm": operations / seconds / 1e9 / peak, "peak_rss_mb": Double(usage.ru_maxrss) / 1024,
            "threads": Parallelism.threads,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "%@ tokens_per_s=%.0f step_ms=%.1f gflop/step=%.1f achieved=%.1f GFLOP/s sgemm=%.1f GFLOP/s (%.0f%%) peak_rss_mb=%.0f trainable=%d",
                         spec.name, result["tokens_per_s"] as! Double, seconds * 1000, operations / 1e9,
                         operations / seconds / 1e9, peak, 100 * operations / seconds / 1e9 / peak,
                         Double(usage.ru_maxrss) / 1024, tuned.trainableCount))
        }
    }
}
