import Model

/// One way of adapting the frozen encoder. A tuned model holds one or more
/// (LoRA together with a deep prompt, say); each owns its parameters and, for
/// prompts, turns them into what the encoder consumes and their gradients back.
public protocol TuningComponent: AnyObject {
    /// The parameters this component adds to the model, named in PTune's scheme
    /// (PEFT's names without `base_model.model.`, `bert.` and the adapter name).
    var parameters: [Parameter] { get }
    /// Adds this component's prompts to those of a pass; `dropoutSeed` is set when training.
    func addPrompts(to prompts: inout Prompts, dropoutSeed: UInt64?)
    /// After the encoder's backward pass: carries the prompts' gradients into the parameters.
    func backward()
    /// Positions of the encoder's table that come before the first real token (a prompt's).
    var positionsBeforeTokens: Int { get }
}

extension TuningComponent {
    public var positionsBeforeTokens: Int { 0 }
    public func addPrompts(to prompts: inout Prompts, dropoutSeed: UInt64?) {}
    public func backward() {}
}
