using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>timm's <c>Mlp</c>: fc1 → GELU (exact erf form, as nn.GELU) → fc2. With a <see cref="ComputeDType"/>
/// all three run in that dtype and so does the output.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1;
    public readonly Linear fc2;

    /// <summary>Dtype of the matrix work; <c>null</c> = plain fp32. Set it through the model.</summary>
    public ScalarType? ComputeDType { get => computeDType; set => computeDType = MixedPrecision.Validate(value); }
    ScalarType? computeDType;

    public Mlp(int dim, int hidden) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(dim, hidden, hasBias: true);
        fc2 = nn.Linear(hidden, dim, hasBias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = MixedPrecision.Linear(fc1, x, computeDType);
        using var g = nn.functional.gelu(h);
        return MixedPrecision.Linear(fc2, g, computeDType);
    }
}
