import Foundation

/// One folder per fuzzing process, reused by every input (files are overwritten).
let fuzzFolder: String = {
    let path = NSTemporaryDirectory() + "ptune-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}()

/// The folder, emptied.
func scratchFolder() -> String {
    for name in (try? FileManager.default.contentsOfDirectory(atPath: fuzzFolder)) ?? [] {
        try? FileManager.default.removeItem(atPath: fuzzFolder + "/" + name)
    }
    return fuzzFolder
}

/// `data` written to a file of the folder; its path.
func scratchFile(_ data: Data) -> String {
    let path = scratchFolder() + "/input"
    try? data.write(to: URL(fileURLWithPath: path))
    return path
}
