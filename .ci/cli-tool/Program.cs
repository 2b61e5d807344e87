// .ci/cli-tool.sh's helper (see the csproj):
//   pngs <idx folder> <out> <train count> <test count>  the IDX files as <out>/{train,test}/<class>/<n>.png (8-bit grey)
//   score <model.zip> <class folder> <min accuracy>     scores the folder's images (paths only, no Label) with the zip; fails below the minimum
//   onnx <model.onnx> <size> <features>                 runs the graph on one grey image; fails unless [1, features] comes out
using System.Globalization;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using SkiaSharp;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
string[] classes = { "T-shirt-top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle-boot" };
switch (args.FirstOrDefault())
{
    case "pngs" when args.Length == 5:
        foreach (var (split, name, count) in new[] { ("train", "train", int.Parse(args[3])), ("t10k", "test", int.Parse(args[4])) })
        {
            var images = Idx(Path.Combine(args[1], $"{split}-images-idx3-ubyte.gz"));
            var labels = Idx(Path.Combine(args[1], $"{split}-labels-idx1-ubyte.gz"));
            for (int i = 0; i < count; i++)
            {
                string folder = Path.Combine(args[2], name, classes[labels[8 + i]]);
                Directory.CreateDirectory(folder);
                using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8));
                System.Runtime.InteropServices.Marshal.Copy(images, 16 + i * 784, bitmap.GetPixels(), 784);
                using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(folder, $"{i:D5}.png"), png.ToArray());
            }
        }
        return 0;

    case "score" when args.Length == 4:
    {
        var ml = new MLContext(seed: 0);
        var model = ml.Model.Load(args[1], out _);
        // The zip is given image paths only — no Label column, dummy or real; the class folders are the truth here.
        var files = Directory.GetDirectories(args[2]).SelectMany(d => Directory.GetFiles(d, "*.png")
            .Select(f => (Path: Path.GetFullPath(f), Label: Path.GetFileName(d)))).ToList();
        var scored = model.Transform(ml.Data.LoadFromEnumerable(files.Select(f => new Row { Path = f.Path })));
        var predicted = scored.GetColumn<string>("PredictedLabel").ToList();
        double accuracy = files.Zip(predicted, (r, p) => r.Label == p ? 1.0 : 0.0).Average();
        Console.WriteLine($"{args[1]}: {files.Count} unlabelled images scored by ML.NET alone, accuracy {accuracy:P1}");
        return accuracy >= double.Parse(args[3]) ? 0 : 1;
    }

    case "onnx" when args.Length == 4:
    {
        int size = int.Parse(args[2]), features = int.Parse(args[3]);
        using var session = new InferenceSession(args[1]);
        var input = new DenseTensor<float>(Enumerable.Repeat(0.5f, size * size).ToArray(), new[] { 1, 1, size, size });
        using var results = session.Run(new[] { NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), input) });
        var output = results.First().AsTensor<float>();
        bool ok = output.Dimensions.SequenceEqual(new[] { 1, features }) && output.All(float.IsFinite);
        Console.WriteLine($"{args[1]}: ONNX Runtime ran it, output [{string.Join(", ", output.Dimensions.ToArray())}]{(ok ? "" : $", expected [1, {features}] finite")}");
        return ok ? 0 : 1;
    }

    default:
        Console.Error.WriteLine("usage: pngs <idx folder> <out> <train> <test> | score <zip> <folder> <min accuracy> | onnx <file> <size> <features>");
        return 2;
}

static byte[] Idx(string path)
{
    using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var memory = new MemoryStream();
    gz.CopyTo(memory);
    return memory.ToArray();
}

sealed class Row
{
    public string Path { get; set; } = "";
}
