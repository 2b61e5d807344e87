using System.Text.RegularExpressions;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Every rule about ConvNeXt V2 weight names in one place: the official facebookresearch/ConvNeXt-V2 names
/// (<c>downsample_layers</c>, <c>stages.i.j.dwconv</c>, <c>pwconv1</c>, <c>grn.gamma</c> [1, 1, 1, C], <c>norm</c>,
/// <c>head</c>; an FCMAE checkpoint's <c>encoder.</c> prefix and decoder) to timm's, as timm's
/// <c>checkpoint_filter_fn</c> maps them (<see cref="ToTimm"/>); the architecture a timm-named state dict holds
/// (<see cref="Infer"/>); and what of it goes into a model (<see cref="ForModel"/>).</summary>
internal static partial class ConvNextWeightNames
{
    [GeneratedRegex(@"^stages\.(\d+)\.(\d+)\.")] private static partial Regex OfficialBlock();
    [GeneratedRegex(@"^downsample_layers\.(\d+)\.")] private static partial Regex OfficialDownsample();
    [GeneratedRegex(@"^stages\.(\d+)\.blocks\.(\d+)\.")] private static partial Regex TimmBlock();

    /// <summary>True when the names are the official repository's (dense model or FCMAE checkpoint), not timm's.</summary>
    static bool LooksOfficial(IEnumerable<string> keys)
        => keys.Any(k => k.StartsWith("downsample_layers.", StringComparison.Ordinal) || k.StartsWith("encoder.downsample_layers.", StringComparison.Ordinal)
                         || k.Contains(".dwconv.", StringComparison.Ordinal));

    /// <summary>True when the names are a ConvNeXt V2's, timm's or the official repository's (an FCMAE checkpoint's
    /// <c>encoder.</c> and DDP's <c>module.</c> prefixes allowed).</summary>
    public static bool LooksLikeConvNext(IEnumerable<string> keys)
    {
        var names = keys.Select(StripModule).ToList();
        return LooksOfficial(names) || names.Any(k => k is "stem.0.weight" or "encoder.stem.0.weight");
    }

    /// <summary>The state dict under timm's names (encoder) and ours for an FCMAE decoder (<c>proj</c>, <c>mask_token</c>,
    /// <c>decoder.k.&lt;timm block names&gt;</c>, <c>pred</c>); DDP's <c>module.</c> is dropped. An FCMAE checkpoint's encoder
    /// keeps its <c>encoder.</c> prefix. A sparse (MinkowskiEngine) layout is refused: its kernels are not dense convs.</summary>
    public static Dictionary<string, Tensor> ToTimm(Dictionary<string, Tensor> source, string file)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        bool official = LooksOfficial(source.Keys.Select(StripModule));
        foreach (var (original, value) in source)
        {
            string key = StripModule(original);
            if (key.EndsWith(".kernel", StringComparison.Ordinal) || key.Contains(".linear.", StringComparison.Ordinal))
                throw new MaeModelFileException(
                    $"'{file}' holds the sparse (MinkowskiEngine) layout of a ConvNeXt V2 ('{original}'): its kernels are not dense convolutions. " +
                    "Load the dense model's state dict (the released .pt files, or timm's) instead.", file, original);
            var (name, tensor) = official ? FromOfficial(key, value) : (key, value);
            if (!from.TryAdd(name, original))
                throw new MaeModelFileException($"'{file}' holds both '{from[name]}' and '{original}', which name the same parameter '{name}'; refusing to pick one.", file, original);
            result[name] = tensor;
        }
        return result;
    }

    static string StripModule(string k) => k.StartsWith("module.", StringComparison.Ordinal) ? k["module.".Length..] : k;

    /// <summary>timm's <c>checkpoint_filter_fn</c> for one official name (its value reshaped where timm reshapes it: GRN
    /// [1, 1, 1, C] → [C]; a pointwise weight's rank is settled against the model in <see cref="ForModel"/>).</summary>
    static (string, Tensor) FromOfficial(string key, Tensor v)
    {
        string prefix = "";
        if (key.StartsWith("encoder.", StringComparison.Ordinal)) { prefix = "encoder."; key = key["encoder.".Length..]; }
        else if (key.StartsWith("decoder.", StringComparison.Ordinal)) { prefix = "decoder."; key = key["decoder.".Length..]; }
        else if (key is "mask_token" || key.StartsWith("proj.", StringComparison.Ordinal) || key.StartsWith("pred.", StringComparison.Ordinal))
            return (key, v);
        if (prefix != "decoder.")
        {
            key = key.Replace("downsample_layers.0.", "stem.", StringComparison.Ordinal);
            key = OfficialBlock().Replace(key, m => $"stages.{m.Groups[1].Value}.blocks.{m.Groups[2].Value}.");
            key = OfficialDownsample().Replace(key, m => $"stages.{m.Groups[1].Value}.downsample.");
            if (key.StartsWith("head.", StringComparison.Ordinal)) key = "head.fc." + key["head.".Length..];
            else if (key.StartsWith("norm.", StringComparison.Ordinal)) key = "head." + key;
        }
        key = key.Replace("dwconv", "conv_dw", StringComparison.Ordinal).Replace("pwconv", "mlp.fc", StringComparison.Ordinal);
        if (key.Contains("grn.", StringComparison.Ordinal))
        {
            key = key.Replace("grn.beta", "mlp.grn.bias", StringComparison.Ordinal).Replace("grn.gamma", "mlp.grn.weight", StringComparison.Ordinal);
            if (v.dim() >= 1 && v.numel() == v.shape[^1]) v = v.reshape(v.shape[^1]);
        }
        return (prefix + key, v);
    }

    /// <summary>The encoder architecture of timm-named tensors under <paramref name="prefix"/>: widths from the stem and
    /// downsampling convs, depths from the block indices (which must run 0, 1, … without gaps, so a name cannot ask for
    /// more blocks than the file holds), the MLP layout and ratio from the first block; the image size is not in a file
    /// (224, timm's default). Returns the config and the head's class count (0 without <c>head.fc</c>).</summary>
    public static (ConvNextV2Config Config, int NumClasses) Infer(IReadOnlyDictionary<string, long[]> shapes, string file, string prefix = "")
    {
        long[] Need(string name)
            => shapes.TryGetValue(prefix + name, out var s) ? s
               : throw new MaeModelFileException($"'{file}' is not a ConvNeXt V2 state dict: it has no '{prefix}{name}'.", file, prefix + name);
        var stem = Need("stem.0.weight");
        if (stem.Length != 4 || stem[2] != stem[3])
            throw new MaeModelFileException($"'{file}': '{prefix}stem.0.weight' is [{string.Join(", ", stem)}]; expected [dim, channels, p, p].", file, prefix + "stem.0.weight");
        var dims = new int[4];
        dims[0] = checked((int)stem[0]);
        for (int i = 1; i < 4; i++)
        {
            var d = Need($"stages.{i}.downsample.1.weight");
            if (d.Length != 4 || d[1] != dims[i - 1])
                throw new MaeModelFileException($"'{file}': '{prefix}stages.{i}.downsample.1.weight' is [{string.Join(", ", d)}]; expected [dim, {dims[i - 1]}, 2, 2].", file, prefix + $"stages.{i}.downsample.1.weight");
            dims[i] = checked((int)d[0]);
        }
        var depths = new int[4];
        for (int i = 0; i < 4; i++)
        {
            var indices = new SortedSet<int>();
            foreach (var k in shapes.Keys)
            {
                if (!k.StartsWith(prefix, StringComparison.Ordinal)) continue;
                var m = TimmBlock().Match(k[prefix.Length..]);
                if (m.Success && m.Groups[1].Value == i.ToString(System.Globalization.CultureInfo.InvariantCulture)
                    && int.TryParse(m.Groups[2].Value, out int j)) indices.Add(j);
            }
            if (indices.Count == 0 || indices.Min != 0 || indices.Max != indices.Count - 1)
                throw new MaeModelFileException(
                    $"'{file}': stage {i}'s blocks are numbered [{string.Join(", ", indices.Take(8))}{(indices.Count > 8 ? ", …" : "")}]; expected 0, 1, … without gaps.", file, prefix + $"stages.{i}.blocks");
            depths[i] = indices.Count;
        }
        var fc1 = Need("stages.0.blocks.0.mlp.fc1.weight");
        if (fc1[0] % dims[0] != 0)
            throw new MaeModelFileException($"'{file}': '{prefix}stages.0.blocks.0.mlp.fc1.weight' is [{string.Join(", ", fc1)}]; its width is not a multiple of {dims[0]}.", file, prefix + "stages.0.blocks.0.mlp.fc1.weight");
        var config = new ConvNextV2Config
        {
            InChannels = checked((int)stem[1]), StemPatchSize = checked((int)stem[2]), Dims = dims, Depths = depths,
            ConvMlp = fc1.Length == 4, MlpRatio = checked((int)(fc1[0] / dims[0])),
        };
        int classes = shapes.TryGetValue(prefix + "head.fc.weight", out var head) && head.Length == 2 ? checked((int)head[0]) : 0;
        return (config, classes);
    }

    /// <summary>What goes into <paramref name="target"/> (every key by its own state-dict name, <paramref name="prefix"/>
    /// before it in <paramref name="source"/>): an FCMAE file's decoder is dropped for a bare encoder; <c>head.norm</c>
    /// may be missing (timm: "fcmae weights have no classifier or final norm-layer"; it stays 1, 0); <c>head.fc</c> of
    /// another class count is dropped and may be missing (a fresh head). A pointwise weight [out, in] fits a
    /// [out, in, 1, 1] slot and back (the same per-pixel map, as timm reshapes official files).</summary>
    public static WeightNames.Selection ForModel(nn.Module target, IReadOnlyDictionary<string, Tensor> source, string prefix = "")
    {
        var dest = target.state_dict();
        bool Optional(string k) => k.StartsWith("head.", StringComparison.Ordinal);
        bool Dropped(string k)
        {
            if (!k.StartsWith(prefix, StringComparison.Ordinal)) return true;   // another part (an FCMAE decoder)
            string name = k[prefix.Length..];
            return name.StartsWith("head.fc.", StringComparison.Ordinal) && (!dest.TryGetValue(name, out var slot) || !SameShape(source[k], slot));
        }
        var missing = dest.Keys.Where(k => !source.ContainsKey(prefix + k) && !Optional(k)).ToList();
        var unexpected = source.Keys.Where(k => !Dropped(k) && !dest.ContainsKey(k[prefix.Length..])).ToList();
        var shapes = new List<string>();
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, into) in dest)
        {
            if (!source.TryGetValue(prefix + key, out var src) || Dropped(prefix + key)) continue;
            var value = src;
            if (!SameShape(value, into) && (key.EndsWith("mlp.fc1.weight", StringComparison.Ordinal) || key.EndsWith("mlp.fc2.weight", StringComparison.Ordinal))
                && value.numel() == into.numel() && value.shape[0] == into.shape[0] && (value.dim() == 2 || into.dim() == 2))
                value = value.reshape(into.shape);
            if (!SameShape(value, into)) shapes.Add($"{prefix}{key}: file [{string.Join(", ", src.shape)}], model [{string.Join(", ", into.shape)}]");
            else values[key] = value;
        }
        return new WeightNames.Selection(values, missing, unexpected, shapes);
    }

    static bool SameShape(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape);
}
