using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>timm's <c>Mlp</c>: fc1 → GELU (exact erf form, as nn.GELU) → fc2.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
    public readonly Linear fc1;
    public readonly Linear fc2;

    public Mlp(int dim, int hidden) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(dim, hidden, hasBias: true);
        fc2 = nn.Linear(hidden, dim, hasBias: true);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = fc1.forward(x);
        using var g = nn.functional.gelu(h);
        return fc2.forward(g);
    }
}
