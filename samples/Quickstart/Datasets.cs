using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Quickstart;

/// <summary>Labelled images as ML.NET views, each with a "Pixels" column (CHW floats in [0, 1] at the model's geometry)
/// and a "Label" column. <c>Pretraining</c>: the training images as pre-training reads them (whole, for its random
/// crops). <c>Train</c>/<c>Test</c>: as the probes read them — for image files the reference's evaluation view
/// (<c>MaeEvaluationPixels</c>: resize to S / 0.875, centre crop S), what <c>mae featurize</c> and a fine-tuned zip
/// read; Fashion-MNIST's 28-px images as they are. <c>RawTrain</c>/<c>RawTest</c>: the raw-pixel baseline's view (the
/// probes' unless the images were resized for public weights).</summary>
public sealed record Dataset(
    string Description, IDataView Pretraining, IDataView Train, IDataView Test, IDataView RawTrain, IDataView RawTest,
    int Channels, int ImageSize, long TrainCount, long TestCount, IReadOnlyList<string> ClassNames);

public static class Datasets
{
    public const string PixelsColumn = "Pixels";
    public const string LabelColumn = "Label";

    /// <summary>The subset of Fashion-MNIST copied next to the program (samples/data/fashion-mnist-subset).</summary>
    public static string EmbeddedDirectory => Path.Combine(AppContext.BaseDirectory, "data", "fashion-mnist-subset");

    /// <summary>The CIFAR-10 subset copied next to the program (samples/data/cifar10-subset: train/ and test/ class
    /// folders of JPEGs).</summary>
    public static string EmbeddedPhotosDirectory => Path.Combine(AppContext.BaseDirectory, "data", "cifar10-subset");

    sealed class IdxRow
    {
        public float[] Pixels { get; set; } = Array.Empty<float>();
        public uint Label { get; set; }
    }

    /// <summary>Fashion-MNIST IDX files (the embedded subset or a full copy). With <paramref name="channels"/>/<paramref name="size"/>
    /// other than 1/28 the grey 28×28 images are resized (bilinear) and repeated over the channels, lazily, for public weights.</summary>
    public static Dataset FashionMnistIdx(MLContext ml, string directory, int? maxTrain, int? maxTest, int channels = 1, int size = 28)
    {
        var train = FashionMnist.Load("train", directory, maxTrain);
        var test = FashionMnist.Load("t10k", directory, maxTest);
        IDataView View(FashionMnist.Split split, int c, int s)
        {
            var schema = SchemaDefinition.Create(typeof(IdxRow));
            schema[nameof(IdxRow.Pixels)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, c * s * s);
            // Native geometry: convert once and keep. Other geometry: convert on every pass (224-px RGB copies of
            // thousands of images would not fit comfortably in memory).
            if (c == 1 && s == 28)
            {
                var rows = split.ImagesAsFloats().Zip(split.Labels, (p, l) => new IdxRow { Pixels = p, Label = l }).ToArray();
                return ml.Data.LoadFromEnumerable(rows, schema);
            }
            return ml.Data.LoadFromEnumerable(Lazy(split, c, s), schema);
        }
        static IEnumerable<IdxRow> Lazy(FashionMnist.Split split, int c, int s)
        {
            for (int i = 0; i < split.Count; i++)
                yield return new IdxRow { Pixels = Resize(split.Images[i], 28, c, s), Label = split.Labels[i] };
        }
        var rawTrain = View(train, 1, 28);
        var rawTest = View(test, 1, 28);
        bool native = channels == 1 && size == 28;
        string where = Path.GetFullPath(directory) == Path.GetFullPath(EmbeddedDirectory) ? "embedded subset" : directory;
        var modelTrain = native ? rawTrain : View(train, channels, size);
        return new Dataset($"Fashion-MNIST ({where}): {train.Count} train / {test.Count} test images, 28×28 grey" +
                           (native ? "" : $", resized to {channels}×{size}×{size} for the weights"),
            modelTrain, modelTrain, native ? rawTest : View(test, channels, size), rawTrain, rawTest,
            channels, size, train.Count, test.Count, FashionMnist.ClassNames);
    }

    sealed class FileRow
    {
        public string Path { get; set; } = "";
        public string Label { get; set; } = "";
    }

    static readonly string[] ImageExtensions = { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    /// <summary>A folder with one subfolder per class, read by ML.NET's image transforms: for pre-training the whole image
    /// resized to the model's size (LoadImages → ResizeImages → ExtractPixels), for the probes the reference's evaluation
    /// view (<c>MaeEvaluationPixels</c>, as <c>mae featurize</c> and a fine-tuned zip read them; on 10 000 CIFAR-10 photos
    /// it scored 1.5 points above the whole photos in the same linear probe, docs/results.md). When it holds <c>train/</c> and <c>test/</c> folders of class folders (torchvision's ImageFolder
    /// split, as the CIFAR-10 subset), those are the split; otherwise a random <paramref name="testFraction"/> of the
    /// images is held out for the probe. The pixels are computed once and cached in memory.</summary>
    public static Dataset ImageFolder(MLContext ml, string folder, int channels, int size, double testFraction = 0.2)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist.");
        if (channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (grey) or 3 (RGB).");
        string trainFolder = System.IO.Path.Combine(folder, "train"), testFolder = System.IO.Path.Combine(folder, "test");
        bool presplit = Directory.Exists(trainFolder) && Directory.Exists(testFolder);
        IDataView trainRows, testRows;
        string[] classes;
        if (presplit)
        {
            var train = ClassFolderRows(trainFolder, folder, out classes);
            var test = ClassFolderRows(testFolder, folder, out var testClasses);
            if (!testClasses.SequenceEqual(classes))
                throw new ArgumentException($"'{testFolder}' must hold the same class folders as '{trainFolder}' ({string.Join(", ", classes)}); found {string.Join(", ", testClasses)}.");
            trainRows = ml.Data.LoadFromEnumerable(train);
            testRows = ml.Data.LoadFromEnumerable(test);
        }
        else
        {
            var split = ml.Data.TrainTestSplit(ml.Data.LoadFromEnumerable(ClassFolderRows(folder, folder, out classes)), testFraction, seed: 0);
            (trainRows, testRows) = (split.TrainSet, split.TestSet);
        }

        IEstimator<ITransformer> prep = ml.Transforms.LoadImages("Image", folder, nameof(FileRow.Path))
            .Append(ml.Transforms.ResizeImages("Image", size, size));
        if (channels == 1) prep = prep.Append(ml.Transforms.ConvertToGrayscale("Image"));
        prep = prep.Append(ml.Transforms.ExtractPixels(PixelsColumn, "Image", interleavePixelColors: false, scaleImage: 1f / 255,
                colorsToExtract: channels == 1 ? Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red
                                               : Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Rgb))
            .Append(ml.Transforms.SelectColumns(PixelsColumn, LabelColumn));
        var evaluation = ml.Transforms.MaeEvaluationPixels(PixelsColumn, nameof(FileRow.Path), size, channels, folder)
            .Append(ml.Transforms.SelectColumns(PixelsColumn, LabelColumn));
        // Decode once: pre-training makes one pass per epoch and the probes several.
        var pretrainView = ml.Data.Cache(prep.Fit(trainRows).Transform(trainRows));
        var probes = evaluation.Fit(trainRows);
        var trainView = ml.Data.Cache(probes.Transform(trainRows));
        var testView = ml.Data.Cache(probes.Transform(testRows));
        long nTrain = trainView.GetColumn<string>(LabelColumn).LongCount(), nTest = testView.GetColumn<string>(LabelColumn).LongCount();
        string name = Path.GetFullPath(folder) == Path.GetFullPath(EmbeddedPhotosDirectory) ? "CIFAR-10 (embedded subset)" : $"image folder {folder}";
        string how = presplit ? "its train/ and test/ folders" : $"{testFraction:P0} held out";
        return new Dataset($"{name}: {nTrain} train / {nTest} test images of {classes.Length} classes ({how}), {channels}×{size}×{size}",
            pretrainView, trainView, testView, trainView, testView, channels, size, nTrain, nTest, classes);
    }

    /// <summary>The images of <paramref name="folder"/>'s class sub-folders, with paths relative to <paramref name="root"/>
    /// and the sub-folder's name as the label; <paramref name="classes"/>: the sub-folders that hold images, sorted.</summary>
    static List<FileRow> ClassFolderRows(string folder, string root, out string[] classes)
    {
        var rows = Directory.GetDirectories(folder).Select(System.IO.Path.GetFileName).OfType<string>().OrderBy(n => n, StringComparer.Ordinal)
            .SelectMany(c => Directory.EnumerateFiles(System.IO.Path.Combine(folder, c))
                .Where(f => ImageExtensions.Contains(System.IO.Path.GetExtension(f).ToLowerInvariant()))
                .OrderBy(f => f, StringComparer.Ordinal)
                .Select(f => new FileRow { Path = System.IO.Path.GetRelativePath(root, f), Label = c }))
            .ToList();
        classes = rows.Select(r => r.Label).Distinct().ToArray();   // in folder order: sorted
        if (classes.Length < 2)
            throw new ArgumentException(
                $"'{folder}' must hold one subfolder per class with images ({string.Join(", ", ImageExtensions)}) in at least two of them; found {rows.Count} images in {classes.Length} class folder(s).");
        return rows;
    }

    /// <summary>Bilinear resize of one grey square image (bytes) to <paramref name="size"/>, repeated over <paramref name="channels"/>; [0, 1].</summary>
    static float[] Resize(byte[] image, int from, int channels, int size)
    {
        using var scope = NewDisposeScope();
        var x = tensor(image.Select(b => b / 255f).ToArray(), new long[] { 1, 1, from, from });
        if (size != from)
            x = nn.functional.interpolate(x, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false).clamp(0, 1);
        x = x.expand(1, channels, size, size).contiguous();
        return x.data<float>().ToArray();
    }

    /// <summary>Up to <paramref name="count"/> test images of different classes (then any), as CHW float arrays.</summary>
    public static float[][] SampleImages(IDataView view, int count)
    {
        var pixels = view.Schema[PixelsColumn];
        var label = view.Schema[LabelColumn];
        using var cursor = view.GetRowCursor(new[] { pixels, label });
        var getPixels = cursor.GetGetter<VBuffer<float>>(pixels);
        Func<string> getLabel;
        if (label.Type is TextDataViewType)
        {
            var g = cursor.GetGetter<ReadOnlyMemory<char>>(label);
            getLabel = () => { ReadOnlyMemory<char> v = default; g(ref v); return v.ToString(); };
        }
        else
        {
            var g = cursor.GetGetter<uint>(label);
            getLabel = () => { uint v = 0; g(ref v); return v.ToString(); };
        }
        var picked = new List<float[]>();
        var spare = new List<float[]>();
        var seen = new HashSet<string>();
        VBuffer<float> buffer = default;
        while (cursor.MoveNext() && picked.Count < count)
        {
            getPixels(ref buffer);
            var image = buffer.DenseValues().ToArray();
            if (seen.Add(getLabel())) picked.Add(image);
            else if (spare.Count < count) spare.Add(image);
            if (cursor.Position > 2000) break;
        }
        picked.AddRange(spare.Take(count - picked.Count));
        return picked.ToArray();
    }
}
