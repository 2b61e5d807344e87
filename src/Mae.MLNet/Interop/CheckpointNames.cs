using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>Where a state dict came from, judged by its parameter names.</summary>
public enum WeightsFormat
{
    /// <summary>facebookresearch/mae and timm <c>*.mae</c> names (ours): <c>blocks.0.attn.qkv.weight</c>.</summary>
    Official,
    /// <summary>Hugging Face ViTMAE: <c>vit.encoder.layer.0.attention.attention.query.weight</c>, separate q/k/v.</summary>
    HuggingFace,
}

/// <summary>Renames Hugging Face ViTMAE (and DDP-prefixed) state dicts to the official names, fusing q/k/v.</summary>
internal static partial class CheckpointNames
{
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

    public static bool LooksLikeHuggingFace(IEnumerable<string> keys)
        => keys.Any(k => k.StartsWith("vit.embeddings.", StringComparison.Ordinal) || k.StartsWith("embeddings.patch_embeddings.", StringComparison.Ordinal));

    /// <summary>The state dict under the official names. Two file names that map to one official name (say
    /// <c>x</c> and <c>module.x</c>) are refused rather than one silently winning.</summary>
    public static (Dictionary<string, Tensor> StateDict, WeightsFormat Format) ToOfficial(Dictionary<string, Tensor> source, string file)
    {
        var sd = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        void Add(Dictionary<string, Tensor> target, string name, string original, Tensor value)
        {
            if (!from.TryAdd(name, original))
                throw new MaeCheckpointException(
                    $"'{file}' holds both '{from[name]}' and '{original}', which name the same parameter '{name}'; refusing to pick one.", file, original);
            target[name] = value;
        }
        foreach (var (key, value) in source)
            Add(sd, key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key, key, value);
        if (!LooksLikeHuggingFace(sd.Keys)) return (sd, WeightsFormat.Official);
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
                        throw new MaeCheckpointException($"'{file}' holds two {qkvMatch.Groups[1].Value} tensors for '{fused}'; refusing to pick one.", file, key);
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
                throw new MaeCheckpointException($"'{file}': Hugging Face weights lack one of query/key/value for '{fused}'.", file, fused);
            var shapes = parts.Select(p => p!.shape).ToArray();
            if (shapes.Any(s => !s.SequenceEqual(shapes[0])) || shapes[0].Length is not (1 or 2) || parts.Any(p => p!.dtype != parts[0]!.dtype))
                throw new MaeCheckpointException(
                    $"'{file}': query/key/value of '{fused}' differ in shape or dtype ({string.Join(", ", parts.Select(p => $"{p!.dtype} [{string.Join(", ", p.shape)}]"))}).", file, fused);
            Add(result, fused, fused, cat(parts.Select(p => p!).ToArray(), 0));
        }
        return (result, WeightsFormat.HuggingFace);
    }
}
