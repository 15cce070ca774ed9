import Foundation
import Model
import Tuning

/// libFuzzer target: an adapter folder on a tiny BERT (hidden 8, 2 layers, 2 heads, 16 positions).
/// The input is adapter_config.json, a line "--", then adapter_model.safetensors.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    let separator = Data("\n--\n".utf8)
    guard let cut = bytes.range(of: separator) else { return 0 }
    let folder = scratchFolder()
    try? bytes[..<cut.lowerBound].write(to: URL(fileURLWithPath: folder + "/adapter_config.json"))
    try? bytes[cut.upperBound...].write(to: URL(fileURLWithPath: folder + "/adapter_model.safetensors"))
    let weights = BertWeights(config: BertConfig(vocabSize: 32, hiddenSize: 8, layers: 2, heads: 2, intermediateSize: 16,
                                                 maxPositions: 16))
    guard let (model, _) = try? PeftAdapter.read(folder, weights: weights) else { return 0 }
    // An adapter that loads must run: ids within the table, as many positions as it leaves.
    let length = min(model.maxTokens, 6)
    guard length >= 2 else { return 0 }
    let batch = TokenBatch(encodings: [Encoding(inputIds: [Int32](repeating: 1, count: length),
                                                tokenTypeIds: [Int32](repeating: 0, count: length))], paddingId: 0)
    _ = model.forward(batch, forBackward: false)
    return 0
}
