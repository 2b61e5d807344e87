using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>
/// Splits trainable parameters into a decayed and a non-decayed group like timm's
/// <c>param_groups_weight_decay</c> / <c>optim_factory.add_weight_decay</c>: frozen parameters (requires_grad
/// false, e.g. the fixed sin-cos position embeddings) are left out; 1-D parameters (biases, norm weights), names
/// ending in ".bias" and the given names get no decay; everything else is decayed. The names come from the model
/// (<c>NoWeightDecay()</c> of <see cref="Model.MaskedAutoencoder"/>, <see cref="Model.VitClassifier"/>,
/// <see cref="Model.ProjectionHead"/>), as timm's optimizer factory asks <c>model.no_weight_decay()</c>.
/// </summary>
internal static class MaeWeightDecay
{
    public sealed record Groups(
        IReadOnlyList<(string Name, Parameter Parameter)> Decay,
        IReadOnlyList<(string Name, Parameter Parameter)> NoDecay,
        IReadOnlyList<string> Frozen);

    public static Groups Split(nn.Module model, IEnumerable<string> noDecayNames)
    {
        ArgumentNullException.ThrowIfNull(model);
        var skip = new HashSet<string>(noDecayNames ?? Array.Empty<string>(), StringComparer.Ordinal);
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        var frozen = new List<string>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!p.requires_grad) { frozen.Add(name); continue; }
            if (p.dim() == 1 || name.EndsWith(".bias", StringComparison.Ordinal) || skip.Contains(name)) noDecay.Add((name, p));
            else decay.Add((name, p));
        }
        return new Groups(decay, noDecay, frozen);
    }
}
