using Mae.MLNet.Model;
using Mae.MLNet.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>
/// Parameter groups for layer-wise learning-rate decay, as the reference's <c>util/lr_decay.py</c>
/// <c>param_groups_lrd</c> (after BEiT): the model says each parameter's layer id (<see cref="VitClassifier.LayerId"/>,
/// 0 … num_layers = depth + 1) and its no-decay names (<see cref="VitClassifier.NoWeightDecay"/>); a group's lr scale
/// is <c>decay^(num_layers − layer_id)</c>. Within a layer, parameters are split by <see cref="MaeWeightDecay"/> (no
/// decay for 1-D parameters and the no-decay names; frozen ones left out). Groups are named
/// <c>layer_{id}_{decay|no_decay}</c> and ordered by first appearance, as the reference's dict.
/// </summary>
internal static class MaeLayerDecay
{
    public sealed record Group(string Name, int LayerId, double LrScale, double WeightDecay,
        IReadOnlyList<(string Name, Parameter Parameter)> Parameters);

    /// <summary>The lr scale of a layer id: <c>decay^(numLayers − layerId)</c>.</summary>
    public static double Scale(int layerId, int numLayers, double layerDecay) => Math.Pow(layerDecay, numLayers - layerId);

    public static IReadOnlyList<Group> ParamGroups(VitClassifier model, double weightDecay, double layerDecay)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ParamGroups(model, model.NoWeightDecay(), model.LayerId, model.NumLayers, weightDecay, layerDecay);
    }

    /// <summary>A ConvNeXt V2's groups: layer decay by position (<see cref="ConvNextV2.LayerId"/>, the official
    /// <c>layer_decay_type='single'</c>: scale <c>decay^(Σ depths + 1 − id)</c>, as main_finetune.py's list).</summary>
    public static IReadOnlyList<Group> ParamGroups(ConvNextV2 model, double weightDecay, double layerDecay)
    {
        ArgumentNullException.ThrowIfNull(model);
        return ParamGroups(model, model.NoWeightDecay(), model.LayerId, model.NumLayers, weightDecay, layerDecay);
    }

    static IReadOnlyList<Group> ParamGroups(nn.Module model, IEnumerable<string> noDecayNames, Func<string, int> layerId, int numLayers,
        double weightDecay, double layerDecay)
    {
        var split = MaeWeightDecay.Split(model, noDecayNames);
        var noDecay = split.NoDecay.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var decay = split.Decay.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var groups = new List<(string Name, int Layer, bool Decay, List<(string, Parameter)> Params)>();
        var byName = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (name, p) in model.named_parameters())
        {
            bool isDecay = decay.Contains(name);
            if (!isDecay && !noDecay.Contains(name)) continue; // frozen
            int layer = layerId(name);
            string groupName = $"layer_{layer}_{(isDecay ? "decay" : "no_decay")}";
            if (!byName.TryGetValue(groupName, out int g))
            {
                byName[groupName] = g = groups.Count;
                groups.Add((groupName, layer, isDecay, new List<(string, Parameter)>()));
            }
            groups[g].Params.Add((name, p));
        }
        return groups.Select(g => new Group(g.Name, g.Layer, Scale(g.Layer, numLayers, layerDecay), g.Decay ? weightDecay : 0.0, g.Params)).ToList();
    }
}
