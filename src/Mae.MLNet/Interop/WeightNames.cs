using System.Text.RegularExpressions;
using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Every rule about weight names in one place, as timm's <c>checkpoint_filter_fn</c>: Hugging Face ViTMAE
/// (and DDP-prefixed) state dicts to the official names, fusing q/k/v (<see cref="ToOfficial"/>), then which official
/// tensors go into which model, with position tables resized (<see cref="ForModel"/>).</summary>
internal static partial class WeightNames
{
    /// <summary>What of an official-named state dict goes into a model: the tensors to copy by the model's own
    /// state-dict names, and what does not fit.</summary>
    public sealed record Selection(Dictionary<string, Tensor> Values, List<string> Missing, List<string> Unexpected, List<string> ShapeDifferences)
    {
        public bool Fits => Missing.Count + Unexpected.Count + ShapeDifferences.Count == 0;
    }

    /// <summary>
    /// Selects from <paramref name="source"/> (official names) the tensors of <paramref name="target"/>, as the
    /// official main_finetune.py and timm load them: a <see cref="MaskedAutoencoder"/> takes everything; a
    /// <see cref="MaeEncoder"/> drops the decoder, <c>mask_token</c> and a classifier's <c>fc_norm</c>/<c>head</c>; a
    /// <see cref="VitClassifier"/> drops the decoder and <c>mask_token</c>, the pre-training <c>norm</c> under global
    /// pooling, and a <c>head</c> of another class count, and starts <c>head</c> (and <c>fc_norm</c>, from a file that
    /// was not fine-tuned) fresh. Position tables of another grid are interpolated as the reference's
    /// <c>interpolate_pos_embed</c>. Interpolated tensors belong to the caller's dispose scope.
    /// </summary>
    public static Selection ForModel(nn.Module target, IReadOnlyDictionary<string, Tensor> source)
    {
        var classifier = target as VitClassifier;
        bool encoder = target is MaeEncoder;
        bool fineTuned = source.ContainsKey("head.weight") || source.ContainsKey("fc_norm.weight");
        bool keepHead = classifier is not null && source.TryGetValue("head.weight", out var head) && head.shape[0] == classifier.NumClasses;
        bool Dropped(string k)
            => (classifier is not null || encoder) && (k.StartsWith("decoder_", StringComparison.Ordinal) || k == "mask_token")
            || encoder && (k.StartsWith("head.", StringComparison.Ordinal) || k.StartsWith("fc_norm.", StringComparison.Ordinal))
            || classifier is { GlobalPool: true } && k.StartsWith("norm.", StringComparison.Ordinal)
            || classifier is not null && !keepHead && k.StartsWith("head.", StringComparison.Ordinal);
        bool MayBeMissing(string k)
            => classifier is not null && (!keepHead && k.StartsWith("head.", StringComparison.Ordinal)
                                          || !fineTuned && k.StartsWith("fc_norm.", StringComparison.Ordinal));

        var dest = target.state_dict();
        var missing = dest.Keys.Where(k => !source.ContainsKey(k) && !MayBeMissing(k)).ToList();
        var unexpected = source.Keys.Where(k => !dest.ContainsKey(k) && !Dropped(k)).ToList();
        var shapes = new List<string>();
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, into) in dest)
        {
            if (!source.TryGetValue(key, out var src) || Dropped(key)) continue;
            var value = src;
            if ((key == "pos_embed" || key == "decoder_pos_embed") && src.dim() == 3 && into.dim() == 3
                && src.shape[2] == into.shape[2] && src.shape[1] != into.shape[1])
            {
                int newGrid = (int)Math.Round(Math.Sqrt(into.shape[1] - 1));
                value = PosEmbedInterpolation.Interpolate(src, newGrid);
            }
            if (!value.shape.SequenceEqual(into.shape))
                shapes.Add($"{key}: file [{string.Join(", ", src.shape)}], model [{string.Join(", ", into.shape)}]");
            else values[key] = value;
        }
        return new Selection(values, missing, unexpected, shapes);
    }

    static readonly (string Hf, string Official)[] BlockParts =
    {
        ("layernorm_before", "norm1"), ("attention.output.dense", "attn.proj"), ("layernorm_after", "norm2"),
        ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2"),
    };

    static readonly (string Hf, string Official)[] Singles =
    {
        ("embeddings.cls_token", "cls_token"), ("embeddings.position_embeddings", "pos_embed"),
        ("embeddings.patch_embeddings.projection", "patch_embed.proj"), ("layernorm", "norm"),
        ("decoder.decoder_embed", "decoder_embed"), ("decoder.mask_token", "mask_token"),
        ("decoder.decoder_pos_embed", "decoder_pos_embed"), ("decoder.decoder_norm", "decoder_norm"),
        ("decoder.decoder_pred", "decoder_pred"),
    };

    [GeneratedRegex(@"^(?:vit\.)?encoder\.layer\.(\d+)\.(.+)$")] private static partial Regex HfEncoderLayer();
    [GeneratedRegex(@"^decoder\.decoder_layers\.(\d+)\.(.+)$")] private static partial Regex HfDecoderLayer();

    /// <summary>The kind named by parameter names, official or Hugging Face (<c>decoder.</c>), DDP's <c>module.</c> aside.</summary>
    public static MaeWeightFile.Kind KindOf(IEnumerable<string> names)
    {
        var kind = MaeWeightFile.Kind.EncoderOnly;
        foreach (var key in names)
        {
            string k = key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key;
            if (k is "head.weight" or "fc_norm.weight") return MaeWeightFile.Kind.FineTuned;
            if (k.StartsWith("decoder_", StringComparison.Ordinal) || k.StartsWith("decoder.", StringComparison.Ordinal)) kind = MaeWeightFile.Kind.Full;
        }
        return kind;
    }

    public static bool LooksLikeHuggingFace(IEnumerable<string> keys)
        => keys.Any(k => k.StartsWith("vit.embeddings.", StringComparison.Ordinal) || k.StartsWith("embeddings.patch_embeddings.", StringComparison.Ordinal));

    /// <summary>The state dict under the official names. Two file names that map to one official name (say
    /// <c>x</c> and <c>module.x</c>) are refused rather than one silently winning. <c>HuggingFace</c>: the file had Hugging
    /// Face ViTMAE names (<c>vit.encoder.layer.0.attention.attention.query.weight</c>, separate q/k/v), else the official
    /// ones (facebookresearch/mae, timm <c>*.mae</c>, ours: <c>blocks.0.attn.qkv.weight</c>).</summary>
    public static (Dictionary<string, Tensor> StateDict, bool HuggingFace) ToOfficial(Dictionary<string, Tensor> source, string file)
    {
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(Dictionary<string, Tensor> target, string name, string original, Tensor value)
        {
            if (!from.TryAdd(name, original))
                throw new MaeModelFileException(
                    $"'{file}' holds both '{from[name]}' and '{original}', which name the same parameter '{name}'; refusing to pick one.", file, original);
            target[name] = value;
        }
        foreach (var (key, value) in source)
            Add(sd, key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key, key, value);
        if (!LooksLikeHuggingFace(sd.Keys)) return (sd, false);
        from.Clear();

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var qkv = new Dictionary<string, Tensor?[]>(StringComparer.Ordinal);
        foreach (var (key, value) in sd)
        {
            string name = key.StartsWith("vit.", StringComparison.Ordinal) ? key["vit.".Length..] : key;
            Match m;
            string? blockPrefix = null, rest = null;
            if ((m = HfEncoderLayer().Match(key)).Success) { blockPrefix = $"blocks.{m.Groups[1].Value}."; rest = m.Groups[2].Value; }
            else if ((m = HfDecoderLayer().Match(key)).Success) { blockPrefix = $"decoder_blocks.{m.Groups[1].Value}."; rest = m.Groups[2].Value; }
            if (blockPrefix is not null)
            {
                var qkvMatch = Regex.Match(rest!, @"^attention\.attention\.(query|key|value)\.(weight|bias)$");
                if (qkvMatch.Success)
                {
                    string fused = $"{blockPrefix}attn.qkv.{qkvMatch.Groups[2].Value}";
                    var parts = qkv.TryGetValue(fused, out var p) ? p : qkv[fused] = new Tensor?[3];
                    int slot = qkvMatch.Groups[1].Value switch { "query" => 0, "key" => 1, _ => 2 };
                    if (parts[slot] is not null)
                        throw new MaeModelFileException($"'{file}' holds two {qkvMatch.Groups[1].Value} tensors for '{fused}'; refusing to pick one.", file, key);
                    parts[slot] = value;
                    continue;
                }
                var part = BlockParts.FirstOrDefault(bp => rest!.StartsWith(bp.Hf + ".", StringComparison.Ordinal));
                Add(result, part.Hf is null ? key : blockPrefix + part.Official + rest![part.Hf.Length..], key, value);
                continue;
            }
            var single = Singles.FirstOrDefault(s => name == s.Hf || name.StartsWith(s.Hf + ".", StringComparison.Ordinal));
            Add(result, single.Hf is null ? key : single.Official + name[single.Hf.Length..], key, value);
        }
        foreach (var (fused, parts) in qkv)
        {
            if (parts.Any(p => p is null))
                throw new MaeModelFileException($"'{file}': Hugging Face weights lack one of query/key/value for '{fused}'.", file, fused);
            var shapes = parts.Select(p => p!.shape).ToArray();
            if (shapes.Any(s => !s.SequenceEqual(shapes[0])) || shapes[0].Length is not (1 or 2) || parts.Any(p => p!.dtype != parts[0]!.dtype))
                throw new MaeModelFileException(
                    $"'{file}': query/key/value of '{fused}' differ in shape or dtype ({string.Join(", ", parts.Select(p => $"{p!.dtype} [{string.Join(", ", p.shape)}]"))}).", file, fused);
            Add(result, fused, fused, cat(parts.Select(p => p!).ToArray(), 0));
        }
        return (result, true);
    }
}
