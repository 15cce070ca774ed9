import ArgumentParser
import Model
import Tuning

struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the trainable tensors of a method on a model and count them.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var method: MethodOptions

    @Option(help: "Labels of the classification head.")
    var labels = 2

    func run() throws {
        let pretrained = try PretrainedModel(folder: model.folder)
        let components = try method.spec().components(weights: pretrained.weights, seed: 0)
        let head = TaskHead(kind: .classification, labels: labels, hiddenSize: pretrained.config.hiddenSize, dropout: 0, seed: 0)
        let tuned = TunedModel(weights: pretrained.weights, components: components, head: head)
        for parameter in tuned.trainable { print("\(parameter.name) \(parameter.shape)") }
        let total = tuned.parameters.scalarCount
        print("trainable \(tuned.trainableCount) of \(total) parameters (\(String(format: "%.2f", 100 * Double(tuned.trainableCount) / Double(total)))%)")
    }
}
