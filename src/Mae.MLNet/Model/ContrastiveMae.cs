using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// A masked autoencoder with a contrastive term, after CAN (Mishra et al., "A simple, efficient and scalable
/// contrastive masked autoencoder for learning visual representations", 2022): two augmented views of every image
/// are masked independently and reconstructed by the MAE; the mean of each view's visible encoder tokens goes through
/// a projection head, and an InfoNCE loss (SimCLR's NT-Xent) pulls the two views of an image together and pushes the
/// other images of the batch away:
/// <c>loss = (mae(view1) + mae(view2)) / 2 + weight · InfoNCE(g(pool1), g(pool2), T)</c>.
/// The MAE's own losses are those of <see cref="MaskedAutoencoder.Forward"/>; CAN's noise-prediction term is left out.
/// The projection head is trained with the model and dropped afterwards (features come from <see cref="Mae"/>).
/// Not a module itself: the MAE keeps its official parameter names (a module around it would register its flat
/// parameters a second time, and <c>Module.to</c> would then convert only one copy); a trainer optimises
/// <see cref="Parameters"/> and stores <see cref="Projector"/> beside the MAE.
/// </summary>
internal sealed class ContrastiveMae
{
    readonly MaskedAutoencoder mae;

    public MaskedAutoencoder Mae => mae;
    public ProjectionHead Projector { get; }
    /// <summary>Weight of the InfoNCE term (0 = reconstruction only).</summary>
    public double ContrastiveWeight { get; }
    /// <summary>InfoNCE temperature T.</summary>
    public double Temperature { get; }

    public ContrastiveMae(MaskedAutoencoder mae, double contrastiveWeight = 0.1, double temperature = 0.1, int projectionDim = 128)
    {
        ArgumentNullException.ThrowIfNull(mae);
        if (!(contrastiveWeight >= 0 && double.IsFinite(contrastiveWeight)))
            throw new ArgumentOutOfRangeException(nameof(contrastiveWeight), contrastiveWeight, "The contrastive weight must be a finite number ≥ 0.");
        if (!(temperature > 0 && double.IsFinite(temperature)))
            throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "The temperature must be a finite number > 0.");
        this.mae = mae;
        ContrastiveWeight = contrastiveWeight;
        Temperature = temperature;
        var device = mae.parameters().First().device;
        Projector = new ProjectionHead(mae.Config.EmbedDim, mae.Config.EmbedDim * 2, projectionDim);
        Projector.to(device);
    }

    /// <summary>The MAE's parameters, then the projector's: what the optimiser trains.</summary>
    public IEnumerable<Parameter> Parameters() => mae.parameters().Concat(Projector.parameters());

    /// <summary>The combined loss of two views [N, C, H, W] of the same N images (view k of image i is row i of
    /// view k), each masked at <paramref name="maskRatio"/>; <paramref name="noise1"/>/<paramref name="noise2"/> [N, L]
    /// make the masks deterministic.</summary>
    public (Tensor Loss, Tensor Reconstruction, Tensor Contrastive) Forward(Tensor view1, Tensor view2, double maskRatio, Tensor? noise1 = null, Tensor? noise2 = null)
    {
        MaeInputs.CheckImages(view1, mae.Config, nameof(view1));
        MaeInputs.CheckImages(view2, mae.Config, nameof(view2));
        if (view1.shape[0] != view2.shape[0])
            throw new ArgumentException($"The two views must hold the same images: {view1.shape[0]} vs {view2.shape[0]} rows.", nameof(view2));
        if (view1.shape[0] < 2)
            throw new ArgumentException($"InfoNCE needs at least 2 images per batch (the others are the negatives); got {view1.shape[0]}.", nameof(view1));
        using var scope = NewDisposeScope();
        var (rec1, z1) = View(view1, maskRatio, noise1);
        var (rec2, z2) = View(view2, maskRatio, noise2);
        var reconstruction = rec1.Plus(rec2).DividedBy(2);
        var contrastive = InfoNce(Projector.forward(z1), Projector.forward(z2), Temperature);
        var loss = ContrastiveWeight == 0 ? reconstruction.clone() : reconstruction.Plus(contrastive.Times(ContrastiveWeight));
        return (loss.MoveToOuterDisposeScope(), reconstruction.MoveToOuterDisposeScope(), contrastive.MoveToOuterDisposeScope());
    }

    /// <summary>The MAE loss of one view and the mean of its visible patch tokens after the encoder's norm [N, D].</summary>
    (Tensor Loss, Tensor Pooled) View(Tensor images, double maskRatio, Tensor? noise)
    {
        var (latent, mask, idsRestore) = mae.ForwardEncoder(images, maskRatio, noise);
        var pred = mae.ForwardDecoder(latent, idsRestore);
        return (mae.ForwardLoss(images, pred, mask), latent[.., 1.., ..].mean(new long[] { 1 }));
    }

    /// <summary>
    /// SimCLR's NT-Xent over 2N embeddings: with u = normalize(cat(a, b)), s = u·uᵀ / T and the diagonal left out, row
    /// i's positive is its other view; the loss is the mean over all 2N rows of −log softmax(s_i)[positive].
    /// </summary>
    public static Tensor InfoNce(Tensor a, Tensor b, double temperature)
    {
        if (a.dim() != 2 || !a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"Expected two [N, D] embeddings of the same shape; got [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}].");
        using var scope = NewDisposeScope();
        long n = a.shape[0];
        var u = nn.functional.normalize(cat(new[] { a, b }, 0).to(float32), dim: 1);           // [2N, D]
        var s = u.matmul(u.t()).DividedBy(temperature);                                            // [2N, 2N]
        using var minusInfinity = double.NegativeInfinity.ToScalar();   // held: see ScalarMath
        s = s.masked_fill(eye(2 * n, dtype: ScalarType.Bool, device: s.device), minusInfinity);
        using var zero = 0L.ToScalar();
        using var half = n.ToScalar();
        using var all = (2 * n).ToScalar();
        using var one = 1L.ToScalar();
        var positive = cat(new[] { arange(half, all, one, device: s.device), arange(zero, half, one, device: s.device) });
        return nn.functional.cross_entropy(s, positive).MoveToOuterDisposeScope();
    }
}

/// <summary>SimCLR-style projection MLP: Linear → GELU → Linear, from the encoder width to the contrastive space.</summary>
internal sealed class ProjectionHead : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1, fc2;

    public ProjectionHead(int inDim, int hiddenDim, int outDim) : base(nameof(ProjectionHead))
    {
        if (inDim < 1 || hiddenDim < 1 || outDim < 1)
            throw new ArgumentOutOfRangeException(nameof(outDim), $"Projection sizes must be ≥ 1; got {inDim} → {hiddenDim} → {outDim}.");
        fc1 = nn.Linear(inDim, hiddenDim);
        fc2 = nn.Linear(hiddenDim, outDim);
        RegisterComponents();
    }

    /// <summary>No names: only the 1-D rule applies (biases undecayed, matrices decayed), as timm's default.</summary>
    public IReadOnlySet<string> NoWeightDecay() => new HashSet<string>(StringComparer.Ordinal);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}
