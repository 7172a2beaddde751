"""Camera + face tracker (+ RViz): ros2 launch face_tracking_3dmm tracker.launch.py source:=/dev/video0

Arguments: source (video file, image folder or V4L2 device), params_file, namespace, camera_frame,
rviz (true/false), managed (true: the tracker is the lifecycle node tracker_lifecycle_node, started
unconfigured for the robot's lifecycle manager or `ros2 lifecycle set`), rep155 (false: no REP-155
/humans/faces output, TF frames named by the integer face ids).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node


#: The camera publishes and the tracker reads its image and camera_info under camera/.
CAMERA_TOPICS = [("image", "camera/image_raw"), ("camera_info", "camera/camera_info")]


def camera_topics_node(executable, name, namespace, parameters, node_class=Node, condition=None):
    """A node of this package with its image topics remapped to the camera's."""
    return node_class(package="face_tracking_3dmm", executable=executable, name=name, namespace=namespace,
                      parameters=parameters, remappings=CAMERA_TOPICS, output="screen", condition=condition)


def generate_launch_description():
    share = get_package_share_directory("face_tracking_3dmm")
    source = LaunchConfiguration("source")
    params_file = LaunchConfiguration("params_file")
    namespace = LaunchConfiguration("namespace")
    camera_frame = LaunchConfiguration("camera_frame")
    managed = LaunchConfiguration("managed")
    tracker_parameters = [params_file, {"rep155": LaunchConfiguration("rep155")}]
    return LaunchDescription([
        DeclareLaunchArgument("source", default_value="0",
                              description="Video file, folder of images, image, or V4L2 device (0, /dev/video0)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "tracker.yaml"),
                              description="Parameters of the camera and face_tracker nodes"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of both nodes"),
        DeclareLaunchArgument("camera_frame", default_value="camera_optical_frame",
                              description="Optical frame of the camera (header.frame_id of images)"),
        DeclareLaunchArgument("rviz", default_value="false", description="Also start RViz"),
        DeclareLaunchArgument("rep155", default_value="true",
                              description="Publish the faces as REP-155 describes them (/humans/faces/...)"),
        DeclareLaunchArgument("managed", default_value="false",
                              description="true: the tracker as a lifecycle node, unconfigured until "
                                          "configured and activated"),
        camera_topics_node("camera_node", "camera", namespace,
                           [params_file, {"source": source, "frame_id": camera_frame}]),
        camera_topics_node("tracker_node", "face_tracker", namespace, tracker_parameters,
                           condition=UnlessCondition(managed)),
        camera_topics_node("tracker_lifecycle_node", "face_tracker", namespace, tracker_parameters,
                           node_class=LifecycleNode, condition=IfCondition(managed)),
        Node(
            package="rviz2",
            executable="rviz2",
            name="rviz2",
            arguments=["-d", os.path.join(share, "config", "face_tracking.rviz")],
            condition=IfCondition(LaunchConfiguration("rviz")),
        ),
    ])
