"""Face tracker alone on recorded images, in the bag's time:

    ros2 launch face_tracking_3dmm replay.launch.py &
    ros2 bag play --clock my_bag

Arguments: params_file, namespace, image_topic, camera_info_topic (the bag's topics).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("face_tracking_3dmm")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "tracker.yaml"),
                              description="Parameters of the face_tracker node"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node"),
        DeclareLaunchArgument("image_topic", default_value="camera/image_raw",
                              description="Image topic recorded in the bag"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera/camera_info",
                              description="CameraInfo topic recorded in the bag"),
        Node(
            package="face_tracking_3dmm",
            executable="tracker_node",
            name="face_tracker",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"), {"use_sim_time": True}],
            remappings=[("image", LaunchConfiguration("image_topic")),
                        ("camera_info", LaunchConfiguration("camera_info_topic"))],
            output="screen",
        ),
    ])
