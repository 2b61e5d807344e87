using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// The trainable part of an attentive probe: an <see cref="AttentivePooler"/> over a frozen encoder's patch tokens,
/// then a linear <c>head</c> to class logits. [N, L, D] tokens → [N, classes].
/// </summary>
public sealed class AttentiveClassifier : nn.Module<Tensor, Tensor>
{
    public int NumClasses { get; }
    public readonly AttentivePooler pooler;
    public readonly Linear head;

    /// <summary>Without the pooler's MLP; kept for binary compatibility.</summary>
    public AttentiveClassifier(int embedDim, int numHeads, int numClasses, double layerNormEps)
        : this(embedDim, numHeads, numClasses, layerNormEps, mlpRatio: 0) { }

    /// <summary><paramref name="mlpRatio"/>: the pooler's MLP (<see cref="AttentivePooler.MlpRatio"/>; 0: none).</summary>
    public AttentiveClassifier(int embedDim, int numHeads, int numClasses, double layerNormEps = 1e-6, double mlpRatio = 0) : base(TorchBackend.Checked(nameof(AttentiveClassifier)))
    {
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"A classifier needs at least 2 classes; got {numClasses}.");
        NumClasses = numClasses;
        pooler = new AttentivePooler(embedDim, numHeads, layerNormEps, mlpRatio);
        head = nn.Linear(embedDim, numClasses, hasBias: true);
        RegisterComponents();
        using var noGrad = no_grad();
        VitClassifier.TruncNormal(head.weight!, std: 0.02);   // as the pooler (V-JEPA's probe head)
        nn.init.zeros_(head.bias!);
    }

    public int EmbedDim => pooler.EmbedDim;

    /// <summary>Parameters kept out of weight decay besides biases and norms: the learned query, as a model's tokens.</summary>
    public IReadOnlySet<string> NoWeightDecay() => new HashSet<string>(StringComparer.Ordinal) { "pooler.query_token" };

    /// <summary>[N, L, D] tokens → [N, classes] logits.</summary>
    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        return head.forward(pooler.forward(tokens)).MoveToOuterDisposeScope();
    }
}
