import Foundation
import Model
import Tasks

/// libFuzzer target: the first byte picks a reader, the rest is its file. 0: a task spec; 1-4: a
/// training split as classification JSONL, classification CSV, tagging JSONL, tagging CoNLL.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let body = Data(bytes: data + 1, count: size - 1)
    let folder = scratchFolder()
    let formats = [("classification", "jsonl"), ("classification", "csv"), ("tagging", "jsonl"), ("tagging", "conll")]
    let choice = Int(data[0]) % (formats.count + 1)
    let specPath = folder + "/task.json"
    if choice == 0 {
        try? body.write(to: URL(fileURLWithPath: specPath))
        if let spec = try? TaskSpec(contentsOf: specPath) { _ = try? spec.examples("train") }
        return 0
    }
    let (kind, format) = formats[choice - 1]
    try? body.write(to: URL(fileURLWithPath: folder + "/train." + format))
    let spec = #"{"name": "f", "kind": "\#(kind)", "format": "\#(format)", "labels": ["a", "b", "O", "B-X"], "text_pair_field": "p", "train": "train.\#(format)"}"#
    try? Data(spec.utf8).write(to: URL(fileURLWithPath: specPath))
    guard let spec = try? TaskSpec(contentsOf: specPath), let examples = try? spec.examples("train") else { return 0 }
    for example in examples {
        precondition(kind == "tagging" ? example.words.count == example.tags.count : example.label >= 0)
    }
    return 0
}
