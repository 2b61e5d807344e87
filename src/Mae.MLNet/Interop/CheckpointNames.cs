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

    public static (Dictionary<string, Tensor> StateDict, WeightsFormat Format) ToOfficial(Dictionary<string, Tensor> source)
    {
        var sd = source.ToDictionary(kv => kv.Key.StartsWith("module.", StringComparison.Ordinal) ? kv.Key["module.".Length..] : kv.Key,
                                     kv => kv.Value, StringComparer.Ordinal);
        if (!LooksLikeHuggingFace(sd.Keys)) return (sd, WeightsFormat.Official);

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
                    parts[qkvMatch.Groups[1].Value switch { "query" => 0, "key" => 1, _ => 2 }] = value;
                    continue;
                }
                var part = BlockParts.FirstOrDefault(bp => rest!.StartsWith(bp.Hf + ".", StringComparison.Ordinal));
                result[part.Hf is null ? key : blockPrefix + part.Official + rest![part.Hf.Length..]] = value;
                continue;
            }
            var single = Singles.FirstOrDefault(s => name == s.Hf || name.StartsWith(s.Hf + ".", StringComparison.Ordinal));
            result[single.Hf is null ? key : single.Official + name[single.Hf.Length..]] = value;
        }
        foreach (var (fused, parts) in qkv)
        {
            if (parts.Any(p => p is null))
                throw new MaeCheckpointException($"Hugging Face weights lack one of query/key/value for '{fused}'.");
            result[fused] = cat(parts.Select(p => p!).ToArray(), 0);
        }
        return (result, WeightsFormat.HuggingFace);
    }
}
