using Mae.MLNet.Training;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// Parameter groups for layer-wise learning-rate decay, as the reference's <c>util/lr_decay.py</c>
/// <c>param_groups_lrd</c> (after BEiT): with <c>num_layers = depth + 1</c>, <c>cls_token</c>, <c>pos_embed</c>
/// and <c>patch_embed.*</c> are layer 0, <c>blocks.i.*</c> layer i + 1, everything else (fc_norm / norm, head)
/// layer num_layers; a group's lr scale is <c>decay^(num_layers − layer_id)</c>. Within a layer, parameters are
/// split by <see cref="MaeWeightDecay"/> (no decay for 1-D parameters and the no-decay names; frozen ones left out).
/// Groups are named <c>layer_{id}_{decay|no_decay}</c> and ordered by first appearance, as the reference's dict.
/// </summary>
public static class MaeLayerDecay
{
    public sealed record Group(string Name, int LayerId, double LrScale, double WeightDecay,
        IReadOnlyList<(string Name, Parameter Parameter)> Parameters);

    /// <summary>The layer id of a parameter name (<c>get_layer_id_for_vit</c>).</summary>
    public static int LayerId(string name, int depth)
    {
        if (name is "cls_token" or "pos_embed" || name.StartsWith("patch_embed", StringComparison.Ordinal)) return 0;
        if (name.StartsWith("blocks.", StringComparison.Ordinal))
        {
            var part = name.Split('.')[1];
            if (int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int i))
                return i + 1;
        }
        return depth + 1;
    }

    /// <summary>The lr scale of a layer id: <c>decay^(depth + 1 − layerId)</c>.</summary>
    public static double Scale(int layerId, int depth, double layerDecay) => Math.Pow(layerDecay, depth + 1 - layerId);

    public static IReadOnlyList<Group> ParamGroups(nn.Module model, int depth, double weightDecay, IEnumerable<string> noDecayNames, double layerDecay)
    {
        ArgumentNullException.ThrowIfNull(model);
        var split = MaeWeightDecay.Split(model, noDecayNames);
        var noDecay = split.NoDecay.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var decay = split.Decay.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var groups = new List<(string Name, int Layer, bool Decay, List<(string, Parameter)> Params)>();
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, p) in model.named_parameters())
        {
            bool isDecay = decay.Contains(name);
            if (!isDecay && !noDecay.Contains(name)) continue; // frozen
            int layer = LayerId(name, depth);
            string groupName = $"layer_{layer}_{(isDecay ? "decay" : "no_decay")}";
            if (!byName.TryGetValue(groupName, out int g))
            {
                byName[groupName] = g = groups.Count;
                groups.Add((groupName, layer, isDecay, new List<(string, Parameter)>()));
            }
            groups[g].Params.Add((name, p));
        }
        return groups.Select(g => new Group(g.Name, g.Layer, Scale(g.Layer, depth, layerDecay), g.Decay ? weightDecay : 0.0, g.Params)).ToList();
    }
}
