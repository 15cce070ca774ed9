import Foundation
import Model

/// libFuzzer target: any bytes as text for the tokenizer (a tab splits a pair), and as a vocab.txt.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    let text = String(decoding: bytes, as: UTF8.self)
    let parts = text.split(separator: "\t", maxSplits: 1).map(String.init)
    let encoding = fuzzTokenizer.encode(parts.first ?? "", pair: parts.count > 1 ? parts[1] : nil, maxLength: 64)
    precondition(encoding.inputIds.count <= 64 && encoding.inputIds.count == encoding.tokenTypeIds.count)
    precondition(encoding.inputIds.allSatisfy { fuzzTokenizer.largestId >= $0 && $0 >= 0 })
    _ = try? BertTokenizer(vocabText: scratchFile(bytes))
    return 0
}

/// A small vocabulary with every special token, some words and continuation pieces.
let fuzzTokenizer: BertTokenizer = {
    let tokens = BertTokenizer.specialTokens + ["the", "a", "un", "##believ", "##able", "[", "]", ",", ".", "x", "##x",
                                                "北", "é", "e", "##s", "cl"]
    return try! BertTokenizer(vocabulary: Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, Int32($0)) }),
                              basic: BasicTokenizer(), source: "fuzz")
}()
